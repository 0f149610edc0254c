"""Train once, reuse everywhere: a disk cache of trained models keyed by code and recipe.

Several chapters start from the same baseline (UR-DMU trained with MIL on the ucf preset):
the MIL chapter trains it, the TGS, glance and experts chapters fine-tune or compare with it.
:func:`trained` returns the cached result when the *same code* already trained the *same
recipe*; otherwise it trains and stores it. The key hashes every source file of ``vadbook``,
a fingerprint of the data, the :class:`~vadbook.train.TrainConfig` and the recipe ``name`` (which
must name everything else that changes the result: model sizes, the score loss, the start
weights). A change to any of them trains anew, so a cached number is never stale.

``$VADBOOK_CACHE`` sets the folder (default ``~/.cache/vadbook``); ``VADBOOK_CACHE=0``
turns the cache off.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch

from . import seed_everything
from .data.video import Benchmark
from .train import FitResult, TrainConfig, fit

_SOURCE_HASH: str | None = None


def source_hash() -> str:
    """SHA-256 (16 hex digits) over every ``.py`` file of the installed ``vadbook`` package."""
    global _SOURCE_HASH
    if _SOURCE_HASH is None:
        h = hashlib.sha256()
        root = Path(__file__).resolve().parent
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        _SOURCE_HASH = h.hexdigest()[:16]
    return _SOURCE_HASH


def cache_dir() -> Path | None:
    """The cache folder, or ``None`` when ``VADBOOK_CACHE=0``."""
    value = os.environ.get("VADBOOK_CACHE", "")
    if value == "0":
        return None
    return Path(value) if value else Path.home() / ".cache" / "vadbook"


def data_fingerprint(bench: Benchmark) -> str:
    """Hash of the splits' video names, lengths, labels and feature sums: two loads of
    different data (another release folder, crop mode or validation split) never share a key."""
    h = hashlib.sha256(bench.name.encode())
    for split in ("train", "val", "test"):
        for v in bench.split(split):
            h.update(f"{split}|{v.name}|{v.T}|{v.label}|{float(v.features.sum()):.6e}".encode())
    return h.hexdigest()[:16]


def recipe_key(name: str, bench: Benchmark, cfg: TrainConfig) -> str:
    cfg_dict = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress", "device")}
    blob = json.dumps({"name": name, "data": data_fingerprint(bench), "cfg": cfg_dict,
                       "code": source_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def trained(name: str, build: Callable[[], torch.nn.Module], bench: Benchmark, cfg: TrainConfig,
            score_loss: Callable | None = None, **fit_kwargs) -> FitResult:
    """``fit(build(), bench.train, bench.val, cfg, score_loss)``, or its cached result.

    Args:
        name: the recipe, e.g. ``"urdmu-small-mil"``; must differ whenever ``build`` or
            ``score_loss`` would train differently.
        build: returns the untrained model (with start weights loaded for fine-tuning).
        bench, cfg, score_loss, fit_kwargs: as :func:`vadbook.train.fit`.

    Returns:
        A :class:`FitResult`; ``result.cached`` tells whether it came from the cache.
    """
    folder = cache_dir()
    path = folder / f"{name}-{recipe_key(name, bench, cfg)}.pt" if folder else None
    seed_everything(cfg.seed)       # the initial weights depend on the seed, not on the caller
    model = build()
    if path is not None and path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(blob["state_dict"])
        dev = torch.device(cfg.device) if cfg.device else None
        if dev is not None:
            model.to(dev)
        else:
            from . import device
            model.to(device())
        return FitResult(model, blob["history"], blob["best_step"], blob["best_val"], blob["seconds"],
                         cached=True)
    result = fit(model, bench.train, bench.val, cfg, score_loss=score_loss,
                 class_names=bench.classes, **fit_kwargs)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                    "history": result.history, "best_step": result.best_step,
                    "best_val": result.best_val, "seconds": result.seconds}, tmp)
        tmp.replace(path)
    return result
