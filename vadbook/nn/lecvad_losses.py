"""The losses of LEC-VAD, Eq. (2)-(3) and (6)-(10).

Readings chosen (the paper is terse):

* ``K = max(floor(T_b / 16), 1)`` per video, ``T_b`` its valid length (Sec. 4.1).
* Eq. (3) is a *binary* cross-entropy on ``p^b_1 = topK-mean_t s^b[t, 1]``, with
  ``p^b_0 = 1 - p^b_1``. Read literally, ``p^b_0`` would be the top-K mean of the normal
  column, which asks only the K *most normal* snippets of a normal video to be normal.
* Eq. (6)-(7): ``s^aware`` is a logit; the video-level class distribution is
  ``p^m = softmax_c(topK-mean_t s^aware[t, c] / tau)`` (VadCLIP's MIL-then-softmax, with its
  temperature ``tau = 0.07``, since ``s^aware`` lies in ``[-1, 2]``). The target ``g`` is
  one-hot on class 0 for a normal video and the normalised multi-hot classes otherwise.
* Eq. (8) ``L_gmm = sqrt(sum_t (s_gmm[t] - s^b[t, 1])^2)`` per video over valid snippets
  (``+1e-8`` inside the root so its gradient is finite at 0), mean over videos, on all
  videos; gradients reach both ``s_gmm`` and ``s^b`` as written.
* Eq. (9) ``L_reg`` is the mean over valid snippets, then over videos.
"""
from __future__ import annotations

import torch

from ..losses.mil import check_labels, topk_mean

__all__ = ["lecvad_k", "topk_mean_classes", "agnostic_loss", "aware_loss", "aware_targets",
           "video_class_probs", "gmm_loss", "reg_loss", "lecvad_loss"]


def lecvad_k(mask: torch.Tensor) -> torch.Tensor:
    """``K = max(floor(T_b / 16), 1)`` per video, ``[B]`` long (LEC-VAD Sec. 4.1)."""
    return (mask.sum(dim=1) // 16).clamp_min(1)


def topk_mean_classes(s: torch.Tensor, mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Eq. (2)/(6): top-K mean over time of every column, ``[B, T, C] -> [B, C]``."""
    B, T, C = s.shape
    flat = s.transpose(1, 2).reshape(B * C, T)
    m = mask[:, None, :].expand(B, C, T).reshape(B * C, T)
    return topk_mean(flat, m, k.repeat_interleave(C)).reshape(B, C)


def agnostic_loss(s_b: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. (2)-(3): BCE between ``p^b_1`` (top-K mean of ``s^b[:, 1]``) and the video label."""
    y = check_labels(labels, s_b.shape[0])
    p1 = topk_mean(s_b[..., 1], mask, lecvad_k(mask)).clamp(1e-7, 1 - 1e-7)
    return -(y * p1.log() + (1 - y) * (1 - p1).log()).mean()


def aware_targets(batch: dict, n_classes: int) -> torch.Tensor:
    """``g`` of Eq. (7), ``[B, C + 1]``: normal -> class 0; abnormal -> normalised multi-hot."""
    label = batch["label"].float()
    B = label.shape[0]
    if "classes" in batch:
        multi = batch["classes"].float()
    else:
        idx = batch["class_idx"].long()
        multi = torch.zeros(B, n_classes, device=label.device)
        multi[idx >= 0, idx[idx >= 0]] = 1.0
    if multi.shape != (B, n_classes):
        raise ValueError(f"batch['classes'] has shape {tuple(multi.shape)}, expected [B, C] = [{B}, {n_classes}]")
    abnormal = label[:, None] * multi / multi.sum(dim=1, keepdim=True).clamp_min(1)
    bad = (label > 0) & (multi.sum(dim=1) == 0)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} abnormal videos have no class in batch['classes']")
    return torch.cat([(1 - label)[:, None], abnormal], dim=1)


def video_class_probs(s_aware: torch.Tensor, mask: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Eq. (6) then a softmax over classes: ``p^m`` ``[B, C + 1]``."""
    return (topk_mean_classes(s_aware, mask, lecvad_k(mask)) / temperature).softmax(dim=-1)


def aware_loss(s_aware: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               temperature: float = 0.07) -> torch.Tensor:
    """Eq. (7): cross-entropy ``-sum_c g_c log p^m_c``, mean over videos."""
    logits = topk_mean_classes(s_aware, mask, lecvad_k(mask)) / temperature
    return -(target * logits.log_softmax(dim=-1)).sum(dim=-1).mean()


def gmm_loss(s_gmm: torch.Tensor, s_b1: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. (8): ``sqrt(sum_t (s_gmm[t] - s^b[t, 1])^2)`` per video, mean over videos."""
    sq = ((s_gmm - s_b1).pow(2) * mask).sum(dim=1)
    return (sq + 1e-8).sqrt().mean()


def reg_loss(s_m0: torch.Tensor, s_b1: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. (9): ``mean_t |1 - s^m[t, 0] - s^b[t, 1]|`` per video, mean over videos."""
    per = ((1 - s_m0 - s_b1).abs() * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)
    return per.mean()


def lecvad_loss(out: dict, batch: dict, cfg, score_loss=None) -> tuple[torch.Tensor, dict]:
    """Eq. (10): ``L_agnostic + L_aware + lambda L_gmm + gamma L_reg``.

    ``score_loss(scores, batch)``, if given, replaces ``L_agnostic`` (it receives the coarse
    scores ``out["scores"]``). ``cfg.lam = 0`` / ``cfg.gamma = 0`` switch a term off
    (Table 6); its value is still logged.
    """
    mask = out["mask"]
    s_b1 = out["s_b"][..., 1]
    if score_loss is not None:
        l_agn = score_loss(out["scores"], batch)
    else:
        l_agn = agnostic_loss(out["s_b"], batch["label"], mask)
    target = aware_targets(batch, cfg.n_classes)
    l_aware = aware_loss(out["s_aware"], target, mask, cfg.temperature)
    l_gmm = gmm_loss(out["s_gmm"], s_b1, mask)
    l_reg = reg_loss(out["s_m"][..., 0], s_b1, mask)
    total = l_agn + l_aware + cfg.lam * l_gmm + cfg.gamma * l_reg
    parts = {"agnostic": l_agn, "aware": l_aware, "gmm": l_gmm, "reg": l_reg, "total": total}
    return total, {k: v.detach() for k, v in parts.items()}
