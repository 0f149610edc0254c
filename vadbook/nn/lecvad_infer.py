"""LEC-VAD recipes: build, train (cached by :mod:`vadbook.zoo`) and evaluate at both granularities.

* :func:`lecvad_config` / :func:`lecvad_train_config`: the model and trainer settings of a
  benchmark's scale. Small scale (CPU, the book's chapter): width 64 through a shared
  projection, no dropout, 8 + 8 videos of L = 64 snippets, 150 Adam steps at 1e-3. Paper
  scale: width = feature size, dropout 0.1, 32 + 32 videos of L = 200 (the paper's batch of
  64), 3000 steps at 3e-5 (the paper's learning rate; it trains 10 epochs with AdamW).
  Both keep the *final* weights (one validation pass, at the last step): selecting on
  validation AUC picked early checkpoints whose class head had not learned the classes yet
  (AUC depends on the binary head; fine-grained detection on the class head).
* :func:`train_lecvad`: one cached training run.
* :func:`evaluate_lecvad`: coarse AUC / AP on the Sec. 3.4 score and fine-grained
  mAP@IoU 0.1-0.5 of the Sec. 3.4 instances (:mod:`vadbook.detection_infer`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .. import seed_everything, zoo
from ..data.batching import pad_batch
from ..detection_infer import instances_from_scores
from ..metrics import detection_map, evaluate, ground_truth_instances
from ..train import FitResult, TrainConfig
from .lecvad import LECVAD, LECVADConfig

__all__ = ["lecvad_config", "lecvad_train_config", "train_lecvad", "evaluate_lecvad"]


def _small(bench) -> bool:
    return "-small-" in bench.name


def lecvad_config(bench, **overrides) -> LECVADConfig:
    """:class:`LECVADConfig` for the benchmark's scale; ``overrides`` set any field."""
    base = LECVADConfig(in_dim=bench.feature_dim, n_classes=len(bench.classes))
    if _small(bench):
        base = replace(base, hidden=64, dropout=0.0)
    return replace(base, **overrides)


def lecvad_train_config(bench, seed: int = 0, **overrides) -> TrainConfig:
    """:class:`TrainConfig` for the benchmark's scale (final weights: one validation pass at the end)."""
    select = "AP" if bench.multi_label else "AUC"
    if _small(bench):
        cfg = TrainConfig(steps=150, batch_size=8, seq_len=64, lr=1e-3, weight_decay=5e-5, eval_every=150)
    else:
        cfg = TrainConfig(steps=3000, batch_size=32, seq_len=200, lr=3e-5, weight_decay=5e-5, eval_every=3000)
    return replace(cfg, seed=seed, select=select, **overrides)


def train_lecvad(bench, seed: int = 0, name: str = "lecvad", train_overrides: dict | None = None,
                 **model_overrides) -> FitResult:
    """Train LEC-VAD on a text-aligned benchmark (cached). ``model_overrides`` go to the config.

    The cache key holds ``name``, every model override and the train config, so variants
    (``lam=0``, ``gamma=0``, ...) never collide.
    """
    if getattr(bench, "text_features", None) is None:
        raise ValueError(f"benchmark {bench.name!r} has no text_features; "
                         "use vadbook.data.text_aligned.make_text_aligned_benchmark")
    cfg = lecvad_config(bench, **model_overrides)
    tcfg = lecvad_train_config(bench, seed, **(train_overrides or {}))
    text = torch.from_numpy(np.asarray(bench.text_features, np.float32))
    key = name + "".join(f"-{k}{v}" for k, v in sorted(model_overrides.items()))

    def build() -> LECVAD:
        seed_everything(seed)  # the initial weights must not depend on what ran before
        return LECVAD(cfg, text)

    return zoo.trained(key, build, bench, tcfg)


@torch.no_grad()
def evaluate_lecvad(model: torch.nn.Module, bench, split: str = "test", batch_size: int = 32,
                    **instance_kwargs) -> dict:
    """Coarse ``AUC``, ``AP``, ``AUC_A`` and fine ``mAP@0.1..0.5``, ``AVG`` (fractions, not %).

    One forward pass per padded batch gives both the coarse scores (Sec. 3.4) and the
    instances (:func:`vadbook.detection_infer.instances_from_scores`, ``instance_kwargs``:
    ``r_cls``, ``r_ano``, ``nms_iou``). Also returns ``scores`` (per video), ``instances``
    and ``n_instances``.
    """
    videos = bench.split(split)
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = np.argsort([v.T for v in videos], kind="stable")
    scores: list = [None] * len(videos)
    inst = []
    for s in range(0, len(videos), batch_size):
        idx = order[s:s + batch_size]
        chunk = [videos[i] for i in idx]
        x, mask = pad_batch(chunk, dev)
        o = model(x, mask)
        sc = o["scores"].float().cpu().numpy()
        for j, i in enumerate(idx):
            scores[i] = sc[j, : videos[i].T]
        inst += instances_from_scores(o["s_m"].float().cpu().numpy(), o["p_m"].float().cpu().numpy(),
                                      [v.T for v in chunk], [v.name for v in chunk], bench.classes,
                                      **instance_kwargs)
    model.train(was_training)
    inst.sort(key=lambda i: -i.score)
    coarse = evaluate(scores, videos)
    fine = detection_map(inst, ground_truth_instances(videos), classes=bench.classes)
    out = {k: coarse[k] for k in ("AUC", "AP", "AUC_A")}
    out.update({k: v for k, v in fine.items() if k.startswith("mAP") or k == "AVG"})
    out.update(n_instances=len(inst), instances=inst, scores=scores)
    return out
