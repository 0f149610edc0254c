"""GS-MoE's three stages glued together (d'Amicantonio et al., ICCV 2025, Sec. 3.2, Fig. 4).

1. :func:`stage1`: UR-DMU trained with its MIL objective (:func:`vadbook.recipes.urdmu_baseline`)
   and fine-tuned with L_TGS (GS-MoE Eq. (6)); frozen, it gives the *task-aware features*
   and the coarse scores.
2. :func:`train_experts`: one expert per class (:func:`class_assignment`) or per K-Means
   cluster (:func:`cluster_assignment`), all trained at once on the frozen features, each
   with L_TGS on its own abnormal videos plus the normal ones.
3. :func:`train_gate`: the gate, trained with L_TGS on all videos, experts frozen.

:class:`GSMoE` is the model of stages 2 and 3: it runs the frozen encoder, the experts and
(in stage ``"gate"``) the gate, so :func:`vadbook.train.fit`, :func:`vadbook.train.predict`
and :mod:`vadbook.zoo` handle it like any other model. Without the gate (stage
``"experts"``) its score is the maximum over the experts (Table 3's "+ experts" row; the
paper does not say how that row combines experts).

Pseudo-labels of stages 2 and 3 are splatted from the trained model's *own* detached scores
(Eq. (3)-(5)), as in stage 1; experts and gate start from random weights, so the first
``warmup`` steps use the full top-k MIL loss of Eq. (2) instead (the paper's "few iterations"
of warm-up use its normal half; new models also need the abnormal half to have any peaks).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

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
from .train import FitResult

__all__ = ["MoEConfig", "GSMoE", "stage1", "class_assignment", "cluster_assignment",
           "video_features", "train_experts", "train_gate"]


@dataclass(frozen=True)
class MoEConfig:
    """Sizes and schedule of stages 2 and 3 (defaults: the book's small CPU runs)."""

    expert_dim: int = 64
    gate_dim: int = 64
    heads: int = 4
    dropout: float = 0.1
    steps: int = 150
    lr: float = 1e-3
    warmup: int = 30               # MIL warm-up steps before L_TGS
    use_features: bool = True      # gate with task-aware features (Table 5)
    min_prominence: float = 0.1    # TGS peak threshold

    def tag(self) -> str:
        """A short string naming every field, for cache recipe names."""
        return "-".join(f"{k}{v}" for k, v in asdict(self).items())


class GSMoE(nn.Module):
    """Frozen task encoder + stacked experts + gate.

    Args:
        encoder: the stage-1 UR-DMU (frozen here: no gradients, always in eval mode).
        assign: ``[N_train]`` long expert of each training video (-1 for normal videos), read
            through ``batch["index"]`` by the expert loss.
        n_experts: E.
        cfg: :class:`MoEConfig`.
        stage: ``"experts"`` (train experts; score = max over experts) or ``"gate"``
            (experts frozen too; score = the gate's).
    """

    def __init__(self, encoder: URDMU, assign: Tensor, n_experts: int, cfg: MoEConfig = MoEConfig(),
                 stage: str = "experts"):
        super().__init__()
        if stage not in ("experts", "gate"):
            raise ValueError(f"stage must be 'experts' or 'gate', got {stage!r}")
        if assign.max() >= n_experts:
            raise ValueError(f"assign names expert {int(assign.max())} but there are {n_experts} experts")
        d = encoder.config.dim
        self.cfg, self.stage = cfg, stage
        self.encoder = encoder.requires_grad_(False)
        self.experts = ClassExperts(ExpertConfig(n_experts, d, cfg.expert_dim, cfg.heads, dropout=cfg.dropout))
        self.gate = Gate(GateConfig(n_experts, d, cfg.gate_dim, cfg.heads, cfg.dropout, cfg.use_features))
        if stage == "gate":
            self.experts.requires_grad_(False)
        self.register_buffer("assign", assign.long().clone())
        self.register_buffer("keep", torch.ones(n_experts))   # 0 masks an expert (Table 4)

    def train(self, mode: bool = True) -> "GSMoE":
        super().train(mode)
        self.encoder.eval()
        if self.stage == "gate":
            self.experts.eval()
        return self

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """``x`` ``[B, T, in_dim]`` snippet features -> dict with ``scores`` ``[B, T]``,
        ``coarse`` ``[B, T]`` (stage-1 scores), ``features`` ``[B, T, d]`` (task-aware),
        ``expert_scores`` / ``expert_logits`` ``[B, T, E]`` and, in stage ``"gate"``,
        ``gate_hidden`` ``[B, T, gate_dim]``."""
        with torch.no_grad():
            enc = self.encoder(x, mask)
        feats = enc["features"]
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.stage == "experts"):
            ex = self.experts(feats, mask)
        out = {"coarse": enc["scores"], "features": feats, "expert_scores": ex["scores"],
               "expert_logits": ex["logits"]}
        if self.stage == "experts":
            out["scores"] = ex["scores"].amax(dim=-1)
        else:
            g = self.gate(ex["scores"] * self.keep, feats, mask)
            out["scores"], out["gate_hidden"] = g["scores"], g["hidden"]
        return out

    def loss(self, out: dict, batch: dict, score_loss=None) -> tuple[Tensor, dict[str, Tensor]]:
        """Stage ``"experts"``: :func:`~vadbook.nn.experts.expert_tgs_loss` summed over experts;
        stage ``"gate"``: L_TGS (GS-MoE Eq. (6)) of the gate's scores. Both use the top-k MIL
        loss of Eq. (2) for the first ``cfg.warmup`` steps. ``score_loss`` is not used."""
        warm = batch.get("step", self.cfg.warmup + 1) <= self.cfg.warmup
        labels, mask = batch["label"], batch["mask"]
        if self.stage == "experts":
            total, per_expert = expert_tgs_loss(out["expert_scores"], labels, self.assign[batch["index"]],
                                                mask, warmup=warm, min_prominence=self.cfg.min_prominence)
            return total, {"experts_mean": per_expert.mean()}
        if warm:
            total = topk_bce(out["scores"], labels, mask, form="log_then_mean", reduction="balanced")
        else:
            total = tgs_loss(out["scores"], labels, mask, min_prominence=self.cfg.min_prominence)
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


def class_assignment(videos: list[Video], classes: tuple[str, ...]) -> Tensor:
    """``[N]`` long: index in ``classes`` of each video's first class, -1 for normal videos."""
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[v.classes[0]] if v.classes else -1 for v in videos], dtype=torch.long)


@torch.no_grad()
def video_features(encoder: URDMU, videos: list[Video], batch_size: int = 32) -> np.ndarray:
    """Mean task-aware feature of each video over its valid snippets, ``[N, d]``.

    Videos are encoded full-length in padded, length-sorted batches (masked mean).
    """
    encoder.eval()
    dev = next(encoder.parameters()).device
    order = np.argsort([v.T for v in videos], kind="stable")
    out = np.zeros((len(videos), encoder.config.dim), np.float32)
    for s in range(0, len(videos), batch_size):    # batches of videos, as in predict()
        idx = order[s:s + batch_size]
        x, mask = pad_batch([videos[i] for i in idx], dev)
        f = encoder(x, mask)["features"]
        w = mask[..., None].float()
        out[idx] = ((f * w).sum(1) / w.sum(1)).cpu().numpy()
    return out


def cluster_assignment(encoder: URDMU, videos: list[Video], k: int, seed: int = 0) -> Tensor:
    """GS-MoE Table 6: K-Means (scikit-learn) on the mean task-aware features of the abnormal
    videos; ``[N]`` long cluster of each abnormal video, -1 for normal ones."""
    from sklearn.cluster import KMeans

    abnormal = np.array([v.label == 1 for v in videos])
    if abnormal.sum() < k:
        raise ValueError(f"cannot form k={k} clusters from {int(abnormal.sum())} abnormal videos")
    feats = video_features(encoder, [v for v, a in zip(videos, abnormal) if a])
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(feats)
    assign = np.full(len(videos), -1, np.int64)
    assign[abnormal] = labels
    return torch.from_numpy(assign)


def _moe_cfg(bench: Benchmark, seed: int, cfg: MoEConfig):
    return recipes.config("urdmu", bench, seed, steps=cfg.steps, lr=cfg.lr)


def train_experts(bench: Benchmark, encoder_run: FitResult, assign: Tensor, n_experts: int, name: str,
                  seed: int = 0, cfg: MoEConfig = MoEConfig()) -> FitResult:
    """Stage 2 (cached): experts on the frozen encoder of ``encoder_run``.

    ``name`` must identify the encoder run and the assignment (e.g. ``"class-s0"``).
    """
    def build() -> GSMoE:
        return GSMoE(_copy_encoder(bench, encoder_run), assign, n_experts, cfg, "experts")

    return zoo.trained(f"gsmoe-experts-{name}-{cfg.tag()}", build, bench, _moe_cfg(bench, seed, cfg))


def train_gate(bench: Benchmark, experts_run: FitResult, name: str, seed: int = 0,
               cfg: MoEConfig = MoEConfig()) -> FitResult:
    """Stage 3 (cached): the gate on frozen encoder and experts of ``experts_run``."""
    src: GSMoE = experts_run.model

    def build() -> GSMoE:
        model = GSMoE(_copy_encoder(bench, src.encoder), src.assign.cpu(), src.experts.config.n_experts,
                      cfg, "gate")
        model.experts.load_state_dict(src.experts.state_dict())
        return model

    return zoo.trained(f"gsmoe-gate-{name}-{cfg.tag()}", build, bench, _moe_cfg(bench, seed, cfg))


def _copy_encoder(bench: Benchmark, source) -> URDMU:
    model = source.model if isinstance(source, FitResult) else source
    enc = URDMU(recipes.urdmu_config(bench))
    enc.load_state_dict(model.state_dict())
    return enc
