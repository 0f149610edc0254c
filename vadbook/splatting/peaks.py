"""Peak detection on abnormal scores, as GS-MoE Sec. 3.1 describes it.

:func:`find_peaks` finds the peaks ``P_i`` of each video's scores, their prominence and their
widths ``W_i``, batched over videos and snippets in ``O(B T)`` with running maxima instead of
walks. Invalid snippets are barriers: a masked tail ends a video like its last snippet does.
The kernels built on the peaks are in :mod:`vadbook.splatting.tgs`.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .kernels import check_scores, nearest_true

__all__ = ["PeakInfo", "find_peaks"]


class PeakInfo(NamedTuple):
    """Per-snippet peak description, all ``[B, T]``; values are 0 away from local maxima.

    Attributes:
        is_peak: the peaks ``P_i``: local maxima passing the prominence and height thresholds.
        is_local_max: every local maximum (one per plateau), before the thresholds.
        prominence: ``s_P - max(left base, right base)`` at local maxima.
        rise: ``v1``, the strictly rising run before the peak (plateau), in snippets.
        fall: ``v2``, the strictly falling run after it.
        width: ``W_i = min(v1, v2)`` over the sides that exist (see :func:`find_peaks`).
        left, right: the kernel window of Eq. (3) is ``[P_i - left_i, P_i + right_i]``.
    """

    is_peak: Tensor
    is_local_max: Tensor
    prominence: Tensor
    rise: Tensor
    fall: Tensor
    width: Tensor
    left: Tensor
    right: Tensor


def _shift(x: Tensor, k: int, fill) -> Tensor:
    """``out[:, t] = x[:, t - k]`` (k > 0: from the left, k < 0: from the right), ``fill`` outside."""
    out = torch.full_like(x, fill)
    if k > 0:
        out[:, k:] = x[:, :-k]
    elif k < 0:
        out[:, :k] = x[:, -k:]
    return out


def find_peaks(scores: Tensor, mask: Tensor | None = None, min_prominence: float = 0.1,
               window: int = 2, min_height: float = 0.0) -> PeakInfo:
    """Peaks of abnormal scores and their widths, as GS-MoE Sec. 3.1 describes.

    Readings (the paper gives one sentence for each):

    * **Local maximum.** A maximal run of equal valid scores (a *plateau*; one snippet if no
      tie) whose valid neighbours just outside are strictly lower. It yields one peak, at its
      middle snippet ``(start + end) // 2``.
    * **Prominence** "over the previous two scores and the subsequent two": with the window
      ``w = 2``, ``s_P - max(min(the w scores before the plateau), min(the w scores after))``.
      This is SciPy's topographic prominence with ``wlen = 2 w + 1`` (each side's minimum
      stops early at a score above the peak, which for ``w = 2`` changes nothing); a large
      ``window`` gives the full prominence, at a cost ``O(window B T)``. A peak needs
      ``prominence >= min_prominence`` and ``s_P >= min_height``.
    * **Boundaries.** Snippets before the first valid one, after the last or masked are
      *absent*, not low: a window side only holds the valid, contiguous scores that exist, a
      side with none does not count, and with no side at all (``T_valid = 1``, a constant
      video) the prominence is 0. So an event rising to the first or last snippet can be a
      peak, judged by its inner side; constant scores give no peak when ``min_prominence > 0``.
    * **Width.** ``v1`` counts the snippets of the strictly increasing run ending at the
      plateau, ``v2`` those of the strictly decreasing run after it (equal scores end a run).
      ``W = min(v1, v2)`` over the sides that exist, so a peak on the first (last) snippet
      takes ``W = v2`` (``v1``) and one with no side ``W = 0``. The kernel window of Eq. (3)
      is the plateau widened by ``min(W, v)`` on each side: ``[P - left, P + right]``.

    Args:
        scores: ``[B, T]`` abnormal scores (read detached).
        mask: ``[B, T]`` bool, True for valid snippets (None: all valid).
        min_prominence: minimum prominence (score units).
        window: snippets per side in the prominence (2 in GS-MoE).
        min_height: minimum peak score (0: off; not in the paper).

    Returns:
        :class:`PeakInfo` of ``[B, T]`` tensors.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 snippet, got {window}")
    valid = check_scores(scores, mask)
    B, T = scores.shape
    s = torch.where(valid, scores.detach(), torch.zeros_like(scores))
    idx = torch.arange(T, device=s.device).expand(B, T)
    prev_ok, next_ok = _shift(valid, 1, False), _shift(valid, -1, False)
    s_prev, s_next = _shift(s, 1, 0.0), _shift(s, -1, 0.0)

    # plateau [a, b] around every snippet
    same_prev = valid & prev_ok & (s == s_prev)
    same_next = valid & next_ok & (s == s_next)
    a, b = nearest_true(~same_prev)[0], nearest_true(~same_next)[1]  # never -1 / T: ends are True
    has_left, has_right = prev_ok.gather(1, a), next_ok.gather(1, b)
    left_lower = ~has_left | (s_prev.gather(1, a) < s)
    right_lower = ~has_right | (s_next.gather(1, b) < s)
    is_local_max = valid & left_lower & right_lower & (idx == (a + b) // 2)

    # bases: min of up to `window` contiguous valid scores on each side of the plateau, each
    # side stopping before a score above the peak
    inf = torch.full_like(s, float("inf"))
    base_l, base_r = inf.clone(), inf.clone()
    ok_l, ok_r = torch.ones_like(valid), torch.ones_like(valid)
    for k in range(1, window + 1):  # loop over the window's offsets, not over snippets
        pl, pr = (a - k).clamp(0, T - 1), (b + k).clamp(0, T - 1)
        sl, sr = s.gather(1, pl), s.gather(1, pr)
        ok_l = ok_l & (a - k >= 0) & valid.gather(1, pl) & (sl <= s)
        ok_r = ok_r & (b + k < T) & valid.gather(1, pr) & (sr <= s)
        base_l = torch.where(ok_l, torch.minimum(base_l, sl), base_l)
        base_r = torch.where(ok_r, torch.minimum(base_r, sr), base_r)
    ninf = torch.full_like(s, float("-inf"))
    base = torch.maximum(torch.where(has_left, base_l, ninf), torch.where(has_right, base_r, ninf))
    prominence = torch.where(is_local_max & (has_left | has_right), s - base, torch.zeros_like(s))

    # strictly monotone runs: v1 ends at a, v2 starts at b
    rising = valid & prev_ok & (s_prev < s)
    falling = valid & next_ok & (s > s_next)
    rise = (idx - nearest_true(~rising)[0]).gather(1, a)
    fall = (nearest_true(~falling)[1] - idx).gather(1, b)
    big = torch.full_like(rise, T + 1)
    width = torch.minimum(torch.where(rise > 0, rise, big), torch.where(fall > 0, fall, big))
    width = torch.where(width > T, torch.zeros_like(width), width)
    left = idx - a + torch.minimum(width, rise)
    right = b - idx + torch.minimum(width, fall)

    is_peak = is_local_max & (prominence >= min_prominence) & (s >= min_height)
    zero = torch.zeros_like(rise)
    keep = lambda x: torch.where(is_local_max, x, zero)  # noqa: E731
    return PeakInfo(is_peak, is_local_max, prominence, keep(rise), keep(fall), keep(width), keep(left), keep(right))
