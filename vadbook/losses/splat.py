"""Losses on splatted pseudo-labels: GS-MoE's TGS loss (Eq. (6)) and GlanceVAD's (Eq. (7)-(8)).

Targets come from :mod:`vadbook.splatting` and are detached pseudo-labels: gradients flow
only through the scores being supervised. Each loss accepts either ``(scores, labels, mask)``
or ``(scores, batch)`` with a training batch dict (``label``, ``mask``, ``glances``), so it
can serve as a model's ``score_loss(scores, batch)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vadbook.splatting import glance_mask, glance_targets, tgs_targets

from .mil import check_labels, check_mask, topk_bce

__all__ = ["topk_norm_loss", "tgs_loss", "TGSScoreLoss", "glance_loss", "normal_mil_loss",
           "glance_total_loss", "GlanceScoreLoss"]


def _unpack(scores: Tensor, labels, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """``labels`` may be a ``[B]`` tensor or a batch dict; returns float labels and the mask."""
    if isinstance(labels, Mapping):
        mask = labels.get("mask") if mask is None else mask
        labels = labels["label"]
    mask = check_mask(scores, mask)
    return check_labels(labels.to(scores.device), scores.shape[0]), mask


def _mean_over(per_video: Tensor, use: Tensor) -> Tensor:
    """Mean of ``per_video`` over the videos in ``use``; 0 (kept in the graph) if there are none."""
    use = use.to(per_video.dtype)
    return (per_video * use).sum() / use.sum().clamp_min(1)


def _video_bce(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Per-video mean over valid snippets of ``BCE(s_t, y_t)``, ``[B]``."""
    if targets.shape != scores.shape:
        raise ValueError(f"targets has shape {tuple(targets.shape)} but scores have {tuple(scores.shape)}")
    s = torch.where(mask, scores, torch.full_like(scores, 0.5))
    y = torch.where(mask, targets.detach().to(scores.dtype), torch.zeros_like(scores))
    if not (((s >= 0) & (s <= 1)).all() and ((y >= 0) & (y <= 1)).all()):
        raise ValueError("scores and targets must lie in [0, 1] at valid snippets")
    nll = F.binary_cross_entropy(s, y, reduction="none") * mask
    return nll.sum(dim=1) / mask.sum(dim=1).clamp_min(1)


def topk_norm_loss(scores: Tensor, labels, mask: Tensor | None = None, k=None) -> Tensor:
    """``L_topk-norm`` of GS-MoE Eq. (2): ``-(1/N-) sum_normal (1/k) sum_{top-k} log(1 - s)``.

    The mean over each normal video's top-k snippets of ``-log(1 - s)`` (log, then mean, as
    Eq. (2) is written), averaged over the normal videos of the batch (0 if there is none).
    ``k = floor(T_valid / 16) + 1`` by default (see :func:`vadbook.losses.mil.topk_k`).

    Args:
        scores: ``[B, T]`` probabilities.
        labels: ``[B]`` in {0, 1}, or a batch dict with ``label`` and ``mask``.
        mask: ``[B, T]`` bool validity mask.
        k: top-k size, see :func:`vadbook.losses.mil.topk_k`.
    """
    labels, mask = _unpack(scores, labels, mask)
    per_video = topk_bce(scores, torch.zeros_like(labels), mask, k, form="log_then_mean", reduction="none")
    return _mean_over(per_video, labels == 0)


def tgs_loss(scores: Tensor, labels, mask: Tensor | None = None, targets: Tensor | None = None,
             warmup: bool = False, normal_bce: bool = False, k=None, return_parts: bool = False,
             **target_kwargs):
    """``L_TGS = L_topk-norm + BCE(y, y_hat)`` (GS-MoE Eq. (6)).

    ``L_topk-norm`` is :func:`topk_norm_loss`. The BCE compares the scores ``y`` of abnormal
    videos with their TGS pseudo-labels ``y_hat`` (:func:`vadbook.splatting.tgs_targets`,
    computed from the detached scores unless ``targets`` is given): per video the mean over
    valid snippets, then the mean over abnormal videos. Normal videos are not in the BCE by
    default: GS-MoE renders kernels "over the length of anomalous videos" and supervises
    normal ones through ``L_topk-norm``; ``normal_bce=True`` adds them with all-zero targets
    (a dense "everything is normal" term the paper does not have).

    ``warmup=True`` returns ``L_topk-norm`` alone: GS-MoE trains "for a few iterations" with it
    so that spurious peaks are suppressed before peaks become pseudo-labels.

    No term of Eq. (6) asks an abnormal video for a high score: scores that are 0 everywhere
    have no peak, hence all-zero targets, and ``L_TGS = 0``. The loss relies on its start
    point (a trained baseline whose peaks cover the events); the TGS chapter shows the
    collapse into that minimum when they do not.

    Args:
        scores: ``[B, T]`` probabilities (the model's output, with gradients).
        labels: ``[B]`` video labels, or a batch dict with ``label`` and ``mask``.
        mask: ``[B, T]`` bool validity mask.
        targets: precomputed ``[B, T]`` pseudo-labels (detached); None: computed here.
        warmup: only ``L_topk-norm``.
        normal_bce: include normal videos in the BCE with zero targets.
        k: top-k size of ``L_topk-norm``.
        return_parts: also return ``{"topk_norm", "tgs_bce"}`` (detached).
        **target_kwargs: passed to :func:`vadbook.splatting.tgs_targets`.

    Returns:
        Scalar loss, or ``(loss, parts)``.
    """
    labels, mask = _unpack(scores, labels, mask)
    l_norm = topk_norm_loss(scores, labels, mask, k)
    if warmup:
        l_bce = scores.sum() * 0.0
    else:
        abnormal = labels == 1
        if targets is None:
            targets = tgs_targets(scores.detach(), mask, **target_kwargs)
        use = torch.ones_like(abnormal) if normal_bce else abnormal
        targets = torch.where(abnormal[:, None], targets.to(scores.device), torch.zeros_like(scores))
        l_bce = _mean_over(_video_bce(scores, targets, mask), use)
    loss = l_norm + l_bce
    if return_parts:
        return loss, {"topk_norm": l_norm.detach(), "tgs_bce": l_bce.detach()}
    return loss



@dataclass(frozen=True)
class TGSScoreLoss:
    """GS-MoE's ``L_TGS`` (Eq. (6)) with its warm-up, as a ``score_loss(scores, batch)`` for
    :func:`vadbook.train.fit`.

    For ``batch["step"] <= warmup_steps`` the loss is ``L_topk-norm`` alone (GS-MoE: "trained
    for a few iterations with the L_topk-norm component" to suppress spurious peaks), then the
    full :func:`tgs_loss`, with pseudo-labels rendered from the batch's own detached scores at
    every step. A model's ``loss`` puts it in place of its top-k BCE, so with UR-DMU the
    memory, triplet and KL terms stay (GS-MoE fine-tunes UR-DMU with ``L_TGS``, Table 3 row 2).
    The other fields are those of :func:`vadbook.splatting.tgs_targets`; :attr:`tag` names
    the setting for :func:`vadbook.zoo.trained`.
    """

    warmup_steps: int = 20
    min_prominence: float = 0.1
    window: int = 2
    min_height: float = 0.0
    temporal_sigma: str = "moment"
    norm: str = "clamp"
    kind: str = "normal"
    normal_bce: bool = False

    def __post_init__(self):
        from vadbook.splatting import KERNELS, NORMS, TEMPORAL_SIGMAS
        if self.warmup_steps < 0 or self.min_prominence < 0 or self.window < 1:
            raise ValueError(f"need warmup_steps >= 0, min_prominence >= 0, window >= 1; got "
                             f"{self.warmup_steps}, {self.min_prominence}, {self.window}")
        for name, value, allowed in (("temporal_sigma", self.temporal_sigma, TEMPORAL_SIGMAS),
                                     ("norm", self.norm, NORMS), ("kind", self.kind, KERNELS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")

    @property
    def tag(self) -> str:
        """A short name of the setting, e.g. ``"w20-p0.1-win2-moment-clamp"``."""
        extra = "".join([f"-h{self.min_height:g}" if self.min_height else "",
                         "" if self.kind == "normal" else f"-{self.kind}", "-nbce" if self.normal_bce else ""])
        return (f"w{self.warmup_steps}-p{self.min_prominence:g}-win{self.window}-{self.temporal_sigma}"
                f"-{self.norm}{extra}")

    def __call__(self, scores: Tensor, batch: Mapping) -> Tensor:
        warmup = int(batch.get("step", self.warmup_steps + 1)) <= self.warmup_steps
        return tgs_loss(scores, batch, warmup=warmup, normal_bce=self.normal_bce,
                        min_prominence=self.min_prominence, window=self.window, min_height=self.min_height,
                        temporal_sigma=self.temporal_sigma, norm=self.norm, kind=self.kind)

def glance_loss(scores: Tensor, glances, mask: Tensor | None = None, targets: Tensor | None = None,
                **target_kwargs) -> Tensor:
    """``L_abn = BCE(A(t), A_hat(t))`` (GlanceVAD Eq. (7)) over glance-annotated videos.

    ``A_hat`` are the rendered glance pseudo-labels (:func:`vadbook.splatting.glance_targets`,
    from the detached scores unless ``targets`` is given). Per video the mean BCE over valid
    snippets, then the mean over videos with at least one glance (0 if none): normal videos
    and abnormal videos with weak labels only (GlanceVAD Table 5's mixed settings) are left
    to the MIL terms, not pushed to zero.

    Args:
        scores: ``[B, T]`` probabilities.
        glances: ``[B, T]`` bool / ``[B, G]`` long glances, or a batch dict (``glances``, ``mask``).
        mask: ``[B, T]`` bool validity mask.
        targets: precomputed ``[B, T]`` targets; None: computed here.
        **target_kwargs: ``alpha``, ``sigma``, ``kernel``, ``mine``, ... of ``glance_targets``.
            Mining starts after a warm-up in GlanceVAD (50 / 100 iterations): pass ``mine=False`` before.
    """
    if isinstance(glances, Mapping):
        mask = glances.get("mask") if mask is None else mask
        glances = glances["glances"]
    mask = check_mask(scores, mask)
    g = glance_mask(glances.to(scores.device), scores.shape[1], mask)
    if targets is None:
        targets = glance_targets(scores.detach(), g, mask=mask, **target_kwargs)
    return _mean_over(_video_bce(scores, targets.to(scores.device), mask), g.any(dim=1))


def normal_mil_loss(scores: Tensor, labels, mask: Tensor | None = None, k=None) -> Tensor:
    """``L_nor`` of GlanceVAD Eq. (8): the MIL loss of Eq. (1)-(2) on normal videos only.

    ``-log(1 - mean(top-k scores))`` per normal video, averaged over normal videos (0 if none).
    """
    labels, mask = _unpack(scores, labels, mask)
    per_video = topk_bce(scores, torch.zeros_like(labels), mask, k, form="mean_then_log", reduction="none")
    return _mean_over(per_video, labels == 0)


def glance_total_loss(scores: Tensor, batch: Mapping, base_loss: Tensor, k=None,
                      **target_kwargs) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_total = L_base + L_abn + L_nor`` (GlanceVAD Eq. (8)).

    Args:
        scores: ``[B, T]`` probabilities.
        batch: training batch dict with ``label``, ``mask`` and ``glances``.
        base_loss: the baseline's own loss, already computed (e.g. the MIL loss of Eq. (2) for
            the MIL baseline, or UR-DMU's full loss: ``model.loss(out, batch)[0]``).
        k: top-k size of ``L_nor``.
        **target_kwargs: passed to :func:`glance_loss`.

    Returns:
        ``(loss, {"base", "abn", "nor"})`` with detached parts.
    """
    l_abn = glance_loss(scores, batch, **target_kwargs)
    l_nor = normal_mil_loss(scores, batch, k=k)
    loss = base_loss + l_abn + l_nor
    return loss, {"base": base_loss.detach(), "abn": l_abn.detach(), "nor": l_nor.detach()}


@dataclass(frozen=True)
class GlanceScoreLoss:
    """GlanceVAD's objective as a ``score_loss(scores, batch)`` for :func:`vadbook.train.fit`.

    ``L_mil + L_abn + L_nor`` (GlanceVAD Eq. (2), (7), (8)): the top-k BCE of Eq. (2) over the
    batch, :func:`glance_loss` and :func:`normal_mil_loss`. A model's ``loss`` puts it in place
    of its own top-k BCE, so with UR-DMU the memory, triplet and KL terms stay and complete
    ``L_base`` (GlanceVAD Eq. (11)); with the MIL head ``L_base = L_mil`` (Eq. (9)).

    Kernels are rendered from the glances alone until ``batch["step"] > mine_after``, then
    mined (GlanceVAD: mining starts after 50 of 1500 iterations on UCF-Crime). The fields are
    those of :func:`vadbook.splatting.glance_targets`; ``mine=False`` never mines, ``sigma=0``
    gives binary labels. :attr:`tag` names the setting for :func:`vadbook.zoo.trained`.
    """

    alpha: float = 0.9
    sigma: float = 0.1
    kernel: str = "normal"
    mine: bool = True
    dynamic: bool = True
    mine_after: int = 0
    reduce: str = "max"
    norm: str = "max"

    def __post_init__(self):
        from vadbook.splatting import KERNELS
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if not 0 <= self.alpha <= 1 or self.sigma < 0 or self.mine_after < 0:
            raise ValueError(f"need 0 <= alpha <= 1, sigma >= 0, mine_after >= 0; got alpha={self.alpha}, "
                             f"sigma={self.sigma}, mine_after={self.mine_after}")

    @property
    def tag(self) -> str:
        """A short name of the setting, e.g. ``"a0.9-s0.1-normal-mine-dyn-w0"``."""
        mining = ("mine-" + ("dyn" if self.dynamic else "fixed")) if self.mine else "nomine"
        extra = "" if (self.reduce, self.norm) == ("max", "max") else f"-{self.reduce}-{self.norm}"
        return f"a{self.alpha:g}-s{self.sigma:g}-{self.kernel}-{mining}-w{self.mine_after}{extra}"

    def __call__(self, scores: Tensor, batch: Mapping) -> Tensor:
        mining = self.mine and int(batch.get("step", self.mine_after + 1)) > self.mine_after
        base = topk_bce(scores, batch["label"], batch.get("mask"))
        loss, _ = glance_total_loss(scores, batch, base, alpha=self.alpha, sigma=self.sigma, kernel=self.kernel,
                                    mine=mining, dynamic=self.dynamic, reduce=self.reduce, norm=self.norm)
        return loss
