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

Stages 2 and 3 are the two stages of one module, :class:`MoE`, trained by
:func:`vadbook.train.fit` and cached by :mod:`vadbook.zoo` like any model. Each stage reads
the frozen outputs of the previous ones as its input features: ``[task-aware features,
coarse score]`` for the experts, plus the ``E`` expert scores for the gate
(:func:`with_expert_scores`), so no frozen network runs again at every step. Without the gate
(stage ``"experts"``) the score is the maximum over the experts (Table 3's "+ experts" row;
the paper does not say how that row combines experts).

Pseudo-labels of stages 2 and 3 (reading chosen): L_TGS "is used to train the experts and the
MoE" with kernels "extracted from the abnormal scores produced by the model", so by default
(``targets="own"``) each expert and the gate splat targets from their *own* detached scores;
as they start from random weights, the first ``warmup`` steps use the full top-k MIL loss of
Eq. (2) so that peaks mean something. ``targets="coarse"`` splats them from the frozen
stage-1 scores instead (GS-MoE Fig. 2-3 show kernels from the backbone's scores).
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
from .nn.experts import ClassExperts, ExpertConfig, expert_tgs_loss
from .nn.gate import Gate, GateConfig
from .splatting import tgs_targets
from .train import FitResult, predict

__all__ = ["MoEConfig", "moe_config", "MoE", "stage1", "task_aware_benchmark", "class_assignment",
           "cluster_assignment", "train_experts", "with_expert_scores", "train_gate"]


@dataclass(frozen=True)
class MoEConfig:
    """Sizes and schedule of stages 2 and 3 (defaults: the book's small CPU runs)."""

    expert_dim: int = 32
    gate_dim: int = 32
    heads: int = 4
    dropout: float = 0.0
    steps: int = 60
    lr: float = 1e-3
    targets: str = "own"           # TGS pseudo-labels from the model's own scores, or "coarse"
    warmup: int = 30               # top-k MIL steps (Eq. (2)) before L_TGS, for targets="own"
    use_features: bool = True      # gate with task-aware features (Table 5)

    def tag(self) -> str:
        """A short string naming every field, for cache recipe names."""
        return "-".join(f"{k}{v}" for k, v in asdict(self).items())


def moe_config(bench: Benchmark, **overrides) -> MoEConfig:
    """The stage 2-3 recipe for the benchmark's scale: :class:`MoEConfig` defaults at the small
    scale; at the paper scale (our choice, the paper gives no sizes) width 128, dropout 0.1,
    1000 steps of which 200 warm-up."""
    if recipes.scale_of(bench) == "small":
        return replace(MoEConfig(), **overrides)
    return replace(MoEConfig(expert_dim=128, gate_dim=128, dropout=0.1, steps=1000, warmup=200), **overrides)


class MoE(nn.Module):
    """Stage 2 (``"experts"``) or stage 3 (``"gate"``) of GS-MoE on frozen inputs.

    Input ``x`` ``[B, T, C]``: ``[features (feat_dim), coarse score (1)]`` for the experts,
    followed by the ``E`` expert scores for the gate (:func:`with_expert_scores`).

    Args:
        feat_dim: task-aware feature width d.
        n_experts: E.
        cfg: :class:`MoEConfig`.
        stage: ``"experts"`` (score = max over experts) or ``"gate"``.
        assign: ``[N_train]`` long expert of each training video (-1 for normal videos),
            read through ``batch["index"]`` by the expert loss (stage ``"experts"`` only).
    """

    def __init__(self, feat_dim: int, n_experts: int, cfg: MoEConfig = MoEConfig(), stage: str = "experts",
                 assign: Tensor | None = None):
        super().__init__()
        if stage not in ("experts", "gate"):
            raise ValueError(f"stage must be 'experts' or 'gate', got {stage!r}")
        if cfg.targets not in ("coarse", "own"):
            raise ValueError(f"targets must be 'coarse' or 'own', got {cfg.targets!r}")
        self.cfg, self.stage, self.feat_dim, self.n_experts = cfg, stage, feat_dim, n_experts
        if stage == "experts":
            if assign is None or int(assign.max()) >= n_experts or int(assign.max()) < 0:
                raise ValueError(f"stage 'experts' needs assign with experts in [0, {n_experts})")
            self.experts = ClassExperts(ExpertConfig(n_experts, feat_dim, cfg.expert_dim, cfg.heads,
                                                     dropout=cfg.dropout))
            self.register_buffer("assign", assign.long().clone())
        else:
            self.gate = Gate(GateConfig(n_experts, feat_dim, cfg.gate_dim, cfg.heads, cfg.dropout,
                                        cfg.use_features))
            self.register_buffer("keep", torch.ones(n_experts))   # 0 masks an expert (Table 4)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Returns ``scores`` ``[B, T]``, ``coarse`` ``[B, T]``; stage ``"experts"`` adds
        ``expert_scores`` / ``expert_logits`` ``[B, T, E]``, stage ``"gate"`` adds
        ``gate_hidden`` ``[B, T, gate_dim]``."""
        d, E = self.feat_dim, self.n_experts
        C = d + 1 + (E if self.stage == "gate" else 0)
        if x.dim() != 3 or x.shape[-1] != C:
            raise ValueError(f"MoE stage {self.stage!r} expects x of shape [B, T, {C}] (features {d}, "
                             f"coarse score 1{', expert scores ' + str(E) if self.stage == 'gate' else ''}), "
                             f"got {tuple(x.shape)}")
        feats, coarse = x[..., :d], x[..., d]
        if self.stage == "experts":
            ex = self.experts(feats, mask)
            return {"scores": ex["scores"].amax(dim=-1), "coarse": coarse,
                    "expert_scores": ex["scores"], "expert_logits": ex["logits"]}
        g = self.gate(x[..., d + 1:] * self.keep, feats, mask)
        return {"scores": g["scores"], "coarse": coarse, "gate_hidden": g["hidden"]}

    def loss(self, out: dict, batch: dict, score_loss=None) -> tuple[Tensor, dict[str, Tensor]]:
        """Stage ``"experts"``: :func:`~vadbook.nn.experts.expert_tgs_loss` summed over experts;
        stage ``"gate"``: L_TGS (GS-MoE Eq. (6)) of the gate's scores. During the warm-up the
        top-k MIL loss of Eq. (2) replaces the TGS term. ``score_loss`` is unused."""
        c = self.cfg
        labels, mask = batch["label"], batch["mask"]
        warm = c.targets == "own" and batch.get("step", c.warmup + 1) <= c.warmup
        targets = None
        if c.targets == "coarse":
            targets = tgs_targets(out["coarse"].clamp(0, 1), mask)
        if self.stage == "experts":
            total, per_expert = expert_tgs_loss(out["expert_scores"], labels, self.assign[batch["index"]],
                                                mask, targets, warm)
            return total, {"experts_mean": per_expert.mean()}
        if warm:
            total = topk_bce(out["scores"], labels, mask, form="log_then_mean", reduction="balanced")
        else:
            total = tgs_loss(out["scores"], labels, mask, targets=targets)
        return total, {"gate": total.detach()}


def stage1(bench: Benchmark, seed: int = 0) -> FitResult:
    """Stage 1 (cached): UR-DMU trained with MIL (:func:`vadbook.recipes.urdmu_baseline`), then
    fine-tuned with L_TGS (Eq. (6)) for 40 steps, the first 20 with L_topk-norm alone (see
    :class:`vadbook.losses.TGSScoreLoss`), the checkpoint chosen on validation AUC: the TGS
    chapter's recipe, :func:`vadbook.recipes.fine_tune`.
    """
    return recipes.fine_tune("urdmu", bench, seed, "TGS")


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


def _train_config(bench: Benchmark, seed: int, cfg: MoEConfig):
    """UR-DMU's batch recipe with ``cfg``'s steps and learning rate; validation at the end of
    the warm-up and every ``warmup`` steps after (or every ``steps // 2`` without warm-up)."""
    every = cfg.warmup if cfg.targets == "own" and cfg.warmup > 0 else max(1, cfg.steps // 2)
    return recipes.config("urdmu", bench, seed, steps=cfg.steps, lr=cfg.lr, eval_every=every)


def train_experts(ta_bench: Benchmark, assign: Tensor, name: str, seed: int = 0,
                  cfg: MoEConfig | None = None) -> FitResult:
    """Stage 2 (cached): experts of ``assign`` (``[N_train]``, E = max + 1) on ``ta_bench``.

    ``name`` names the assignment (``"class"``, ``"kmeans5"``); the cache key also covers
    the task-aware features (so the stage-1 model) and ``cfg`` (None: :func:`moe_config`).
    """
    cfg = cfg or moe_config(ta_bench)
    n_experts = int(assign.max()) + 1
    tc = _train_config(ta_bench, seed, cfg)
    return zoo.trained(f"gsmoe-experts-{name}-{cfg.tag()}",
                       lambda: MoE(ta_bench.feature_dim - 1, n_experts, cfg, "experts", assign), ta_bench, tc)


def with_expert_scores(ta_bench: Benchmark, experts: MoE, batch_size: int = 32) -> Benchmark:
    """``ta_bench`` with the frozen experts' scores appended to every snippet's features:
    ``[task-aware features, coarse score, E expert scores]``, the gate's input."""
    splits = {}
    for split in ("train", "val", "test"):  # three splits, each one batched pass
        videos = ta_bench.split(split)
        scores = predict(experts, videos, batch_size=batch_size, key="expert_scores")
        splits[split] = [replace(v, features=np.concatenate([v.features, s], axis=1))
                         for v, s in zip(videos, scores)]
    return Benchmark(splits["train"], splits["val"], splits["test"], ta_bench.classes,
                     f"{ta_bench.name}-experts", ta_bench.multi_label)


def train_gate(ex_bench: Benchmark, n_experts: int, name: str, seed: int = 0,
               cfg: MoEConfig | None = None) -> FitResult:
    """Stage 3 (cached): the gate on ``ex_bench`` from :func:`with_expert_scores`.

    ``name`` names the experts (the cache key also fingerprints their scores); ``cfg`` None:
    :func:`moe_config`."""
    cfg = cfg or moe_config(ex_bench)
    d = ex_bench.feature_dim - 1 - n_experts
    if d < 1:
        raise ValueError(f"ex_bench has {ex_bench.feature_dim} channels, too few for {n_experts} experts")
    tc = _train_config(ex_bench, seed, cfg)
    return zoo.trained(f"gsmoe-gate-{name}-{cfg.tag()}", lambda: MoE(d, n_experts, cfg, "gate"), ex_bench, tc)
