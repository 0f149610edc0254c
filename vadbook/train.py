"""The one trainer every chapter uses.

:func:`fit` draws balanced batches (normal half first), optimises ``model.loss`` with Adam,
evaluates on the **validation** split every ``eval_every`` steps and keeps the weights of the
best validation score. The reference code bases keep the checkpoint with the best *test*
score, which reports the maximum of a noisy curve over many looks at the test set and so
overstates what a method would achieve on new videos; vadbook never looks at the test split
while training.
"""
from __future__ import annotations

import copy
import os
import inspect
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import device as default_device
from . import seed_everything
from .data.batching import BalancedBatcher, pad_batch
from .data.video import Video


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`fit`. Defaults are the book's ``small`` scale.

    The paper-scale values of UR-DMU are ``steps=3000, batch_size=64, seq_len=200, lr=1e-4,
    weight_decay=5e-5`` (reference/formats.md).
    """

    steps: int = 300
    batch_size: int = 16          # per half: B normal + B abnormal videos
    seq_len: int = 64             # L
    lr: float = 1e-3
    weight_decay: float = 5e-5
    eval_every: int = 50
    select: str = "AUC"           # validation metric that picks the checkpoint
    seed: int = 0
    mode: str = "resample"        # see vadbook.data.batching.to_grid
    device: str | None = None
    progress: bool | None = None  # None: on, unless $VADBOOK_PROGRESS=0 (the book build)


@dataclass
class FitResult:
    """What :func:`fit` returns: the model with its best-on-validation weights loaded."""

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)   # one dict per logged step
    best_step: int = 0
    best_val: float = float("nan")
    seconds: float = 0.0
    cached: bool = False          # True when vadbook.zoo loaded it from its cache

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of a logged quantity, for plots."""
        rows = [h for h in self.history if key in h]
        return np.array([h["step"] for h in rows]), np.array([h[key] for h in rows])


def _forward(model, batch):
    if "labels" in inspect.signature(model.forward).parameters:
        return model(batch["x"], batch["mask"], labels=batch["label"])
    return model(batch["x"], batch["mask"])


def fit(model: torch.nn.Module, train: list[Video], val: list[Video], cfg: TrainConfig | None = None,
        score_loss: Callable | None = None, class_names: tuple[str, ...] | None = None,
        step_hook: Callable | None = None) -> FitResult:
    """Train ``model`` on ``train`` with balanced batches; select the checkpoint on ``val``.

    Args:
        model: a vadbook model: ``model(x, mask[, labels])`` -> dict with ``scores`` ``[B, T]``,
            and ``model.loss(out, batch, score_loss=...)`` -> ``(loss, parts)``.
        train, val: videos; only video labels (and glances, for glance supervision) of the
            training videos may enter a loss.
        cfg: hyper-parameters.
        score_loss: ``f(scores, batch) -> loss`` replacing the model's classification term
            (TGS, glance supervision). ``batch["step"]`` holds the current step.
        class_names: class order of ``batch["classes"]`` (default: sorted classes of ``train``).
        step_hook: called as ``hook(step, model, batch, out)`` after each step (figures).
    """
    from .metrics import evaluate

    cfg = cfg or TrainConfig()
    dev = torch.device(cfg.device) if cfg.device else default_device()
    seed_everything(cfg.seed)
    model.to(dev)
    if class_names is None:
        class_names = tuple(sorted({c for v in train for c in v.classes}))
    batcher = BalancedBatcher(train, class_names, cfg.batch_size, cfg.seq_len, cfg.mode, cfg.seed, dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = FitResult(model)
    best_state, start = None, time.perf_counter()
    bar = _progress(cfg)
    for step in range(1, cfg.steps + 1):
        model.train()
        batch = batcher.sample()
        batch["step"] = step
        out = _forward(model, batch)
        loss, parts = model.loss(out, batch, score_loss=score_loss)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: loss is {loss.item()} (parts: "
                                     f"{ {k: float(v) for k, v in parts.items()} })")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step_hook is not None:
            step_hook(step, model, batch, out)
        row = {"step": step, "loss": loss.item(), **{k: float(v) for k, v in parts.items()}}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = evaluate(predict(model, val, dev), val)
            row.update({f"val_{k}": v for k, v in metrics.items() if isinstance(v, float)})
            score = metrics[cfg.select]
            if best_state is None or score > result.best_val:
                result.best_val, result.best_step = score, step
                best_state = copy.deepcopy(model.state_dict())
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.3f}", **{f"val_{cfg.select}": f"{score:.3f}"})
        result.history.append(row)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result


def _progress(cfg: TrainConfig):
    on = cfg.progress if cfg.progress is not None else os.environ.get("VADBOOK_PROGRESS", "1") != "0"
    if not on:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=cfg.steps, desc="train", leave=False, mininterval=1.0)


@torch.no_grad()
def predict(model: torch.nn.Module, videos: list[Video], device: torch.device | str | None = None,
            batch_size: int = 32, key: str = "scores") -> list[np.ndarray]:
    """Full-length snippet scores ``[T]`` of each video, in the order of ``videos``.

    Videos are sorted by length and scored in padded batches with a validity mask, so padding
    never changes a valid snippet's score (tested).
    """
    if not videos:
        raise ValueError("predict() got an empty list of videos")
    dev = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = np.argsort([v.T for v in videos], kind="stable")
    out: list[np.ndarray | None] = [None] * len(videos)
    for s in range(0, len(videos), batch_size):
        chunk = [videos[i] for i in order[s:s + batch_size]]
        x, mask = pad_batch(chunk, dev)
        scores = model(x, mask)[key].float().cpu().numpy()
        for j, i in enumerate(order[s:s + batch_size]):
            out[i] = scores[j, : videos[i].T]
    model.train(was_training)
    return out
