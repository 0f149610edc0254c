"""Multiple-instance-learning (MIL) losses on snippet scores.

A video is a *bag* of snippets and only the bag label is known. These losses turn snippet
scores ``[B, T]`` (probabilities in ``[0, 1]``) into a video-level objective:

* :func:`topk_mean` / :func:`topk_bce`: the top-k MIL loss of GlanceVAD Eq. (1)-(2) and
  GS-MoE Eq. (1)-(2), with UR-DMU's choice ``k = floor(T / 16) + 1``.
* :func:`ranking_loss`: the MIL ranking loss of Sultani et al. (CVPR 2018) with its temporal
  smoothness and sparsity terms.

Every function takes a ``[B, T]`` bool validity mask (True = real snippet); padded snippets
never enter a top-k, a max, a sum or a mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["check_mask", "check_labels", "topk_k", "topk_mask", "topk_mean", "topk_bce", "ranking_loss"]


def check_mask(scores: torch.Tensor, mask: torch.Tensor | None, name: str = "scores") -> torch.Tensor:
    """Validate a ``[B, T]`` bool mask against ``scores`` (``[B, T]`` or ``[B, T, ...]``).

    Returns the mask (all True when ``mask`` is None). Raises ValueError on a shape or dtype
    mismatch and when a video has no valid snippet (its top-k would be empty).
    """
    if scores.dim() < 2:
        raise ValueError(f"{name} must be [B, T, ...], got shape {tuple(scores.shape)}")
    B, T = scores.shape[:2]
    if mask is None:
        return torch.ones(B, T, dtype=torch.bool, device=scores.device)
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got dtype {mask.dtype}")
    if tuple(mask.shape) != (B, T):
        raise ValueError(f"mask has shape {tuple(mask.shape)} but {name} has [B, T] = [{B}, {T}]")
    empty = ~mask.any(dim=1)
    if empty.any():
        raise ValueError(f"mask: {int(empty.sum())} of {B} videos have no valid snippet")
    return mask


def _check_probs(scores: torch.Tensor, name: str = "scores") -> None:
    if not ((scores >= 0) & (scores <= 1)).all():  # also catches NaN
        lo, hi = scores.min().item(), scores.max().item()
        raise ValueError(f"{name} must be probabilities in [0, 1] without NaN, got range [{lo}, {hi}]")


def check_labels(labels: torch.Tensor, B: int) -> torch.Tensor:
    """Validate ``[B]`` video labels in {0, 1}; return them as float."""
    if tuple(labels.shape) != (B,):
        raise ValueError(f"labels has shape {tuple(labels.shape)} but the batch has B = {B} videos")
    labels = labels.float()
    if not ((labels == 0) | (labels == 1)).all():
        raise ValueError(f"labels must be 0 (normal) or 1 (abnormal), got values {labels.unique().tolist()}")
    return labels


def topk_k(mask: torch.Tensor, k: int | torch.Tensor | None = None) -> torch.Tensor:
    """Per-video k as a ``[B]`` long tensor, clamped to the video's valid length.

    Args:
        mask: ``[B, T]`` bool validity mask.
        k: None for UR-DMU's ``floor(T_valid / 16) + 1``; an int for the same k in every
            video; a ``[B]`` tensor for one k per video. A k above ``T_valid`` is clamped to
            ``T_valid`` (the mean of all valid snippets).
    """
    B = mask.shape[0]
    n_valid = mask.sum(dim=1)
    if k is None:
        return n_valid // 16 + 1  # <= n_valid whenever n_valid >= 1
    if isinstance(k, int):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = torch.full((B,), k, dtype=torch.long, device=mask.device)
    elif torch.is_tensor(k):
        if tuple(k.shape) != (B,):
            raise ValueError(f"k has shape {tuple(k.shape)} but the batch has B = {B} videos")
        k = k.to(device=mask.device, dtype=torch.long)
        if (k < 1).any():
            raise ValueError(f"every k must be >= 1, got min {int(k.min())}")
    else:
        raise ValueError(f"k must be None, an int or a [B] tensor, got {type(k).__name__}")
    return torch.minimum(k, n_valid)


def topk_mask(scores: torch.Tensor, mask: torch.Tensor | None = None,
              k: int | torch.Tensor | None = None) -> torch.Tensor:
    """Bool ``[B, T]`` marking each video's k highest valid scores.

    Batched: padded snippets are set to ``-inf``, each row is sorted once (stable, so among
    tied scores the earlier snippet wins) and the first k ranks are scattered back.
    """
    mask = check_mask(scores, mask)
    B, T = scores.shape
    k = topk_k(mask, k)
    order = scores.detach().masked_fill(~mask, float("-inf")).sort(dim=1, descending=True, stable=True).indices
    take = torch.arange(T, device=scores.device)[None, :] < k[:, None]
    return torch.zeros_like(mask).scatter(1, order, take)


def topk_mean(scores: torch.Tensor, mask: torch.Tensor | None = None,
              k: int | torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the k largest valid scores of each video (GlanceVAD Eq. (1), GS-MoE Eq. (1)).

    Args:
        scores: ``[B, T]`` snippet scores.
        mask: ``[B, T]`` bool, True for real snippets (None: all valid).
        k: see :func:`topk_k`; default ``floor(T_valid / 16) + 1``.

    Returns:
        ``[B]`` video scores ``y_hat``; differentiable w.r.t. the selected scores.
    """
    mask = check_mask(scores, mask)
    B, T = scores.shape
    k = topk_k(mask, k)
    ranked = scores.masked_fill(~mask, float("-inf")).sort(dim=1, descending=True).values
    take = torch.arange(T, device=scores.device)[None, :] < k[:, None]
    return torch.where(take, ranked, torch.zeros_like(ranked)).sum(dim=1) / k


def _reduce_videos(per_video: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_video
    if reduction == "mean":
        return per_video.mean()
    if reduction == "balanced":  # GS-MoE Eq. (2): 1/N+ sum over abnormal + 1/N- sum over normal
        abn, nor = labels, 1 - labels
        return ((per_video * abn).sum() / abn.sum().clamp_min(1)
                + (per_video * nor).sum() / nor.sum().clamp_min(1))
    raise ValueError(f"reduction must be 'mean', 'balanced' or 'none', got {reduction!r}")


def topk_bce(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None,
             k: int | torch.Tensor | None = None, form: str = "mean_then_log",
             reduction: str = "mean") -> torch.Tensor:
    """Top-k MIL binary cross-entropy between snippet scores and video labels.

    Two forms, both with the top-k selected on the scores of :func:`topk_mean`:

    * ``form="mean_then_log"`` (default): GlanceVAD Eq. (1)-(2) and the public UR-DMU code.
      The video prediction is ``y_hat = mean(top-k scores)`` and the loss is
      ``-(y log y_hat + (1 - y) log(1 - y_hat))``.
    * ``form="log_then_mean"``: GS-MoE Eq. (2) as written, the mean over the top-k snippets of
      the per-snippet log-likelihood ``log s`` (abnormal) or ``log(1 - s)`` (normal).

    The default is the first because it is what the UR-DMU baseline (which GS-MoE and
    GlanceVAD both build on) trains with, and by Jensen's inequality it is the gentler of
    the two: one confident snippet cannot make ``log`` blow up alone. Log terms are clamped at
    -100 as in ``torch.nn.functional.binary_cross_entropy``.

    Args:
        scores: ``[B, T]`` probabilities (``sigma(score)`` in GS-MoE's notation).
        labels: ``[B]`` video labels in {0, 1}.
        mask: ``[B, T]`` bool validity mask.
        k: see :func:`topk_k`.
        form: ``"mean_then_log"`` or ``"log_then_mean"``.
        reduction: ``"mean"`` over videos (UR-DMU's ``nn.BCELoss``), ``"balanced"`` (GS-MoE
            Eq. (2): mean over abnormal videos plus mean over normal videos; a class absent
            from the batch contributes 0) or ``"none"`` for the ``[B]`` per-video losses
            (e.g. to take GS-MoE's ``L_topk-norm`` alone).

    Returns:
        Scalar loss, or ``[B]`` with ``reduction="none"``.
    """
    mask = check_mask(scores, mask)
    _check_probs(scores)
    labels = check_labels(labels, scores.shape[0])
    if form == "mean_then_log":
        y_hat = topk_mean(scores, mask, k)
        per_video = F.binary_cross_entropy(y_hat, labels, reduction="none")
    elif form == "log_then_mean":
        sel = topk_mask(scores, mask, k)
        nll = F.binary_cross_entropy(scores, labels[:, None].expand_as(scores), reduction="none")
        per_video = (nll * sel).sum(dim=1) / sel.sum(dim=1)
    else:
        raise ValueError(f"form must be 'mean_then_log' or 'log_then_mean', got {form!r}")
    return _reduce_videos(per_video, labels, reduction)


def ranking_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None,
                 lambda_smooth: float = 8e-5, lambda_sparse: float = 8e-5,
                 margin: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """MIL ranking loss of Sultani et al. (CVPR 2018), with smoothness and sparsity.

    For an abnormal bag ``a`` and a normal bag ``n``::

        l(a, n) = max(0, margin - max_t s_a(t) + max_t s_n(t))
                  + lambda_smooth * sum_t (s_a(t) - s_a(t+1))^2 + lambda_sparse * sum_t s_a(t)

    Pairing: every abnormal video is paired with every normal video of the batch, as the
    public Keras code does (the paper writes one pair). Smoothness runs over consecutive
    pairs of valid snippets, sparsity over valid snippets, of abnormal videos only.
    The ``||W||`` term of the paper is weight decay, left to the optimiser.

    Args:
        scores: ``[B, T]`` probabilities.
        labels: ``[B]`` in {0, 1}; the batch needs at least one video of each label.
        mask: ``[B, T]`` bool validity mask.
        lambda_smooth, lambda_sparse: weights, 8e-5 in the paper.
        margin: hinge margin (1 in the paper).
        reduction: ``"mean"``: hinge averaged over all (abnormal, normal) pairs, smoothness
            and sparsity averaged over abnormal videos, so the scale does not grow with the
            batch. ``"sum"``: the public code's scale, hinge summed over abnormal videos and
            averaged over normal ones, smoothness and sparsity summed over abnormal videos.

    Returns:
        Scalar loss.
    """
    mask = check_mask(scores, mask)
    _check_probs(scores)
    labels = check_labels(labels, scores.shape[0])
    abn, nor = labels, 1 - labels
    n_abn, n_nor = int(abn.sum()), int(nor.sum())
    if n_abn == 0 or n_nor == 0:
        raise ValueError(f"ranking_loss needs abnormal and normal videos, got {n_abn} abnormal and {n_nor} normal")
    peak = scores.masked_fill(~mask, float("-inf")).amax(dim=1)  # [B]
    pair_w = abn[:, None] * nor[None, :]  # [B, B], row = abnormal, column = normal
    hinge = (F.relu(margin - peak[:, None] + peak[None, :]) * pair_w).sum()
    both_valid = mask[:, 1:] & mask[:, :-1]
    smooth = ((scores[:, 1:] - scores[:, :-1]).pow(2) * both_valid).sum(dim=1)  # [B]
    sparse = (scores * mask).sum(dim=1)
    smooth, sparse = (smooth * abn).sum(), (sparse * abn).sum()
    if reduction == "mean":
        hinge, smooth, sparse = hinge / (n_abn * n_nor), smooth / n_abn, sparse / n_abn
    elif reduction == "sum":
        hinge = hinge / n_nor
    else:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return hinge + lambda_smooth * smooth + lambda_sparse * sparse
