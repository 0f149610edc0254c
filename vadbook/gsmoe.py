"""GS-MoE's three stages glued together (d'Amicantonio et al., ICCV 2025, Sec. 3.2, Fig. 4).

1. :func:`stage1`: UR-DMU trained with its MIL objective (:func:`vadbook.recipes.urdmu_baseline`)
   and fine-tuned with L_TGS (GS-MoE Eq. (6)). Frozen, it gives every snippet its
   *task-aware feature* and a coarse score: :func:`task_aware_benchmark` extracts both for
   all videos once (batched, full length) and returns a benchmark whose video features are
   ``[task-aware features, coarse score]``.
2. :func:`train_experts`: one expert per class (:func:`class_assignment`) or per K-Means
   cluster (:func:`cluster_assignment`), all trained at once on the frozen features, each
   with L_TGS on its own abnormal videos plus the normal ones.
3. :func:`train_gate`: the gate, trained with L_TGS on all videos, experts frozen.

Stages 2 and 3 are one module, :class:`MoE`, trained by :func:`vadbook.train.fit` and cached
by :mod:`vadbook.zoo` like any model. Without the gate (stage ``"experts"``) its score is
the maximum over the experts (Table 3's "+ experts" row; the paper does not say how that
row combines experts).

Pseudo-labels of stages 2 and 3 (reading chosen): GS-MoE Fig. 2-3 extract the kernels from
"the abnormal scores obtained from the backbone model ... at the end of training", so by
default (``targets="coarse"``) the TGS targets are splatted from the frozen stage-1 scores;
``targets="own"`` splats them from the trained model's own scores after ``warmup`` steps of
the top-k MIL loss of Eq. (2) (a new model has no meaningful peaks yet).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from . import recipes, zoo
from .data.batching import pad_batch
from .data.video import Benchmark, Video
from .losses import tgs_loss, topk_bce
from .nn import URDMU
from .nn.experts import ClassExperts, ExpertConfig, expert_tgs_loss
from .nn.gate import Gate, GateConfig
from .splatting import tgs_targets
from .train import FitResult, predict

__all__ = ["MoEConfig", "MoE", "stage1", "task_aware_benchmark", "class_assignment",
           "cluster_assignment", "train_experts", "train_gate"]


@dataclass(frozen=True)
class MoEConfig:
    """Sizes and schedule of stages 2 and 3 (defaults: the book's small CPU runs)."""

    expert_dim: int = 64
    gate_dim: int = 64
    heads: int = 4
    dropout: float = 0.1
    steps: int = 150
    lr: float = 1e-3
    targets: str = "coarse"        # TGS pseudo-labels from the stage-1 scores, or "own"
    warmup: int = 0                # MIL steps before L_TGS (for targets="own")
    use_features: bool = True      # gate with task-aware features (Table 5)
    min_prominence: float = 0.1    # TGS peak threshold

    def tag(self) -> str:
        """A short string naming every field, for cache recipe names."""
        return "-".join(f"{k}{v}" for k, v in asdict(self).items())


class MoE(nn.Module):
    """Stages 2-3 on task-aware inputs ``x = [features (feat_dim), coarse score (1)]``.

    Args:
        feat_dim: task-aware feature width d.
        assign: ``[N_train]`` long expert of each training video (-1 for normal videos),
            read through ``batch["index"]`` by the expert loss.
        n_experts: E.
        cfg: :class:`MoEConfig`.
        stage: ``"experts"`` (train experts; score = max over experts) or ``"gate"``
            (experts frozen; score = the gate's).
    """

    def __init__(self, feat_dim: int, assign: Tensor, n_experts: int, cfg: MoEConfig = MoEConfig(),
                 stage: str = "experts"):
        super().__init__()
        if stage not in ("experts", "gate"):
            raise ValueError(f"stage must be 'experts' or 'gate', got {stage!r}")
        if cfg.targets not in ("coarse", "own"):
            raise ValueError(f"targets must be 'coarse' or 'own', got {cfg.targets!r}")
        if int(assign.max()) >= n_experts:
            raise ValueError(f"assign names expert {int(assign.max())} but there are {n_experts} experts")
        self.cfg, self.stage, self.feat_dim = cfg, stage, feat_dim
        self.experts = ClassExperts(ExpertConfig(n_experts, feat_dim, cfg.expert_dim, cfg.heads,
                                                 dropout=cfg.dropout))
        self.gate = Gate(GateConfig(n_experts, feat_dim, cfg.gate_dim, cfg.heads, cfg.dropout, cfg.use_features))
        (self.gate if stage == "experts" else self.experts).requires_grad_(False)
        self.register_buffer("assign", assign.long().clone())
        self.register_buffer("keep", torch.ones(n_experts))   # 0 masks an expert (Table 4)

    def train(self, mode: bool = True) -> "MoE":
        super().train(mode)
        (self.gate if self.stage == "experts" else self.experts).eval()
        return self

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """``x`` ``[B, T, feat_dim + 1]`` -> dict with ``scores`` ``[B, T]``, ``coarse``
        ``[B, T]``, ``expert_scores`` / ``expert_logits`` ``[B, T, E]`` and, in stage
        ``"gate"``, ``gate_hidden`` ``[B, T, gate_dim]``."""
        if x.dim() != 3 or x.shape[-1] != self.feat_dim + 1:
            raise ValueError(f"MoE expects x of shape [B, T, {self.feat_dim + 1}] (features + coarse "
                             f"score), got {tuple(x.shape)}")
        feats, coarse = x[..., :-1], x[..., -1]
        ex = self.experts(feats, mask)
        out = {"coarse": coarse, "expert_scores": ex["scores"], "expert_logits": ex["logits"]}
        if self.stage == "experts":
            out["scores"] = ex["scores"].amax(dim=-1)
        else:
            g = self.gate(ex["scores"].detach() * self.keep, feats, mask)
            out["scores"], out["gate_hidden"] = g["scores"], g["hidden"]
        return out

    def loss(self, out: dict, batch: dict, score_loss=None) -> tuple[Tensor, dict[str, Tensor]]:
        """Stage ``"experts"``: :func:`~vadbook.nn.experts.expert_tgs_loss` summed over experts;
        stage ``"gate"``: L_TGS (GS-MoE Eq. (6)) of the gate's scores. ``score_loss`` is unused."""
        c = self.cfg
        labels, mask = batch["label"], batch["mask"]
        warm = c.targets == "own" and batch.get("step", c.warmup + 1) <= c.warmup
        targets = None
        if c.targets == "coarse":
            targets = tgs_targets(out["coarse"].clamp(0, 1), mask, min_prominence=c.min_prominence)
        if self.stage == "experts":
            total, per_expert = expert_tgs_loss(out["expert_scores"], labels, self.assign[batch["index"]],
                                                mask, targets, warm, min_prominence=c.min_prominence)
            return total, {"experts_mean": per_expert.mean()}
        if warm:
            total = topk_bce(out["scores"], labels, mask, form="log_then_mean", reduction="balanced")
        else:
            total = tgs_loss(out["scores"], labels, mask, targets=targets, min_prominence=c.min_prominence)
        return total, {"gate": total.detach()}


def stage1(bench: Benchmark, seed: int = 0, steps: int = 100) -> FitResult:
    """Stage 1: UR-DMU (MIL, cached) fine-tuned for ``steps`` steps with L_TGS (Eq. (6))."""
    base = recipes.urdmu_baseline(bench, seed)

    def build() -> URDMU:
        model = URDMU(recipes.urdmu_config(bench))
        model.load_state_dict(base.model.state_dict())
        return model

    cfg = recipes.config("urdmu", bench, seed, steps=steps)
    return zoo.trained("urdmu-tgs-ft-from-urdmu-mil", build, bench, cfg, score_loss=tgs_loss)


class _FeaturesAndScore(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
        out = self.encoder(x, mask)
        return {"fs": torch.cat([out["features"], out["scores"][..., None]], dim=-1)}


def task_aware_benchmark(bench: Benchmark, encoder: nn.Module, batch_size: int = 32) -> Benchmark:
    """``bench`` with each video's features replaced by ``[task-aware features, coarse score]``.

    The frozen encoder (e.g. ``stage1(...).model``) scores full-length videos in padded,
    length-sorted batches (:func:`vadbook.train.predict`); labels, events and ground truth
    are kept. The name gets ``-taskaware`` (the cache also fingerprints the features).
    """
    wrap = _FeaturesAndScore(encoder)
    splits = {}
    for split in ("train", "val", "test"):  # three splits, each one batched pass
        videos = bench.split(split)
        fs = predict(wrap, videos, batch_size=batch_size, key="fs")
        splits[split] = [replace(v, features=f) for v, f in zip(videos, fs)]
    return Benchmark(splits["train"], splits["val"], splits["test"], bench.classes,
                     f"{bench.name}-taskaware", bench.multi_label)


def class_assignment(videos: list[Video], classes: tuple[str, ...]) -> Tensor:
    """``[N]`` long: index in ``classes`` of each video's first class, -1 for normal videos."""
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[v.classes[0]] if v.classes else -1 for v in videos], dtype=torch.long)


def cluster_assignment(videos: list[Video], k: int, seed: int = 0) -> Tensor:
    """GS-MoE Table 6: K-Means (scikit-learn) on the mean task-aware feature of each abnormal
    video of a :func:`task_aware_benchmark` split; ``[N]`` long cluster, -1 for normal videos."""
    from sklearn.cluster import KMeans

    abnormal = np.array([v.label == 1 for v in videos])
    if abnormal.sum() < k:
        raise ValueError(f"cannot form k={k} clusters from {int(abnormal.sum())} abnormal videos")
    x, mask = pad_batch([v for v, a in zip(videos, abnormal) if a])
    w = mask[..., None].float()
    mean = ((x[..., :-1] * w).sum(1) / w.sum(1)).numpy()           # drop the coarse score
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(mean)
    assign = np.full(len(videos), -1, np.int64)
    assign[abnormal] = labels
    return torch.from_numpy(assign)


def train_experts(ta_bench: Benchmark, assign: Tensor, name: str, seed: int = 0,
                  cfg: MoEConfig = MoEConfig()) -> FitResult:
    """Stage 2 (cached): experts of ``assign`` (``[N_train]``, E = max + 1) on ``ta_bench``.

    ``name`` names the assignment (``"class"``, ``"kmeans5"``); the cache key also covers
    the task-aware features (so the stage-1 model) and ``cfg``.
    """
    n_experts = int(assign.max()) + 1
    d = ta_bench.feature_dim - 1
    tc = recipes.config("urdmu", ta_bench, seed, steps=cfg.steps, lr=cfg.lr)
    return zoo.trained(f"gsmoe-experts-{name}-{cfg.tag()}",
                       lambda: MoE(d, assign, n_experts, cfg, "experts"), ta_bench, tc)


def train_gate(ta_bench: Benchmark, experts_run: FitResult, name: str, seed: int = 0,
               cfg: MoEConfig = MoEConfig()) -> FitResult:
    """Stage 3 (cached): the gate on the frozen experts of ``experts_run`` (same ``name``)."""
    src: MoE = experts_run.model

    def build() -> MoE:
        model = MoE(src.feat_dim, src.assign.cpu(), src.experts.config.n_experts, cfg, "gate")
        model.experts.load_state_dict(src.experts.state_dict())
        return model

    tc = recipes.config("urdmu", ta_bench, seed, steps=cfg.steps, lr=cfg.lr)
    return zoo.trained(f"gsmoe-gate-{name}-{src.cfg.tag()}-gate-{cfg.tag()}", build, ta_bench, tc)
