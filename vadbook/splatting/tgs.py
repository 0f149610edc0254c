"""Temporal Gaussian Splatting from score peaks (GS-MoE Sec. 3.1, Eq. (3)-(5)).

:func:`tgs_kernels` builds the gated kernels of Eq. (3)-(4) on the peaks of
:func:`~vadbook.splatting.find_peaks`, as a dense ``[B, T, T]`` gate for inspection and
figures; :func:`tgs_targets` renders and normalises them into pseudo-labels (Eq. (5)) in
``O(B T)``, using that a snippet lies in the window of at most two peaks (see there).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .kernels import check_scores, kernel, nearest_true, normalise
from .peaks import PeakInfo, find_peaks

__all__ = ["TEMPORAL_SIGMAS", "TGSKernels", "tgs_kernels", "tgs_targets"]

TEMPORAL_SIGMAS = ("moment", "width", "score")


class TGSKernels(NamedTuple):
    """The kernels of GS-MoE Eq. (3)-(4) for a batch (see :func:`tgs_kernels`).

    Attributes:
        peaks: the :class:`~vadbook.splatting.PeakInfo` they come from.
        gate: ``[B, T, T]`` bool ``G_{i,t}`` of Eq. (3); row ``i`` is the peak snippet ``P_i``.
        score_sigma: ``[B, T]`` std of the scores in each peak's window (Eq. (3)'s margin).
        time_sigma: ``[B, T]`` temporal width in snippets used in Eq. (4).
    """

    peaks: PeakInfo
    gate: Tensor
    score_sigma: Tensor
    time_sigma: Tensor


def _window_sigmas(s: Tensor, peaks: PeakInfo, temporal_sigma: str) -> tuple[Tensor, Tensor]:
    """Score std and temporal width of every peak's window ``[P - left, P + right]``, ``[B, T]``.

    Window sums come from float64 prefix sums of ``s``, ``s^2``, ``s t`` and ``s t^2`` (windows
    are contiguous), so the cost is ``O(B T)``.
    """
    if temporal_sigma not in TEMPORAL_SIGMAS:
        raise ValueError(f"temporal_sigma must be one of {TEMPORAL_SIGMAS}, got {temporal_sigma!r}")
    B, T = s.shape
    x = s.double()
    t = torch.arange(T, device=s.device, dtype=torch.float64).expand(B, T)
    zero = torch.zeros(B, 1, dtype=torch.float64, device=s.device)
    lo = (t.long() - peaks.left).clamp(0, T)
    hi = (t.long() + peaks.right + 1).clamp(0, T)

    def window_sum(v):
        c = torch.cat([zero, v.cumsum(dim=1)], dim=1)
        return c.gather(1, hi) - c.gather(1, lo)

    n = (hi - lo).clamp_min(1).double()
    m1, m2 = window_sum(x) / n, window_sum(x * x) / n
    score_sigma = (m2 - m1 * m1).clamp_min(0).sqrt()
    if temporal_sigma == "moment":  # sum s (u - P)^2 = sum s u^2 - 2 P sum s u + P^2 sum s
        mass, first, second = window_sum(x), window_sum(x * t), window_sum(x * t * t)
        spread = (second - 2 * t * first + t * t * mass).clamp_min(0)
        time_sigma = torch.where(mass > 0, spread / torch.where(mass > 0, mass, 1.0), 0.0).sqrt()
    elif temporal_sigma == "width":
        time_sigma = torch.maximum(peaks.left, peaks.right).double()
    else:
        time_sigma = score_sigma
    on = peaks.is_peak
    return (score_sigma * on).to(s.dtype), (time_sigma * on).to(s.dtype)


def tgs_kernels(scores: Tensor, mask: Tensor | None = None, min_prominence: float = 0.1, window: int = 2,
                min_height: float = 0.0, temporal_sigma: str = "moment") -> TGSKernels:
    """Kernel construction of GS-MoE Eq. (3) and the widths of Eq. (4), on detached scores.

    Eq. (3) uses ``sigma_i`` as a *score* margin (``s_t >= s_{P_i} - sigma_i``) and Eq. (4) as a
    *temporal* width (``exp(-(t - P_i)^2 / 2 sigma_i^2)``); a score std (about 0.1) used as a
    width in snippets gives a kernel one snippet wide, against Fig. 3 (kernels spread over the
    width of the peaks) and Sec. 4.2 (long events get large variances). Reading chosen: both
    are "the standard deviation around the peak within the width ``W_i``", measured in the
    unit each equation needs, over the window ``[P_i - left_i, P_i + right_i]``:

    * Eq. (3): ``score_sigma_i`` = std of the scores in the window (population std);
    * Eq. (4), ``temporal_sigma="moment"`` (default): the std of the normal distribution
      fitted to the score profile by moments, ``sqrt(sum_t s_t (t - P_i)^2 / sum_t s_t)``, so a
      long, flat event gets a wide kernel and a sharp one a steep kernel;
    * ``"width"``: ``max(left_i, right_i)``, the window's reach (``W_i`` for a one-snippet peak);
    * ``"score"``: ``score_sigma_i`` in snippets, Eq. (4) read literally (about one snippet).

    ``G_{i,t} = 1`` at ``t = P_i`` and at window snippets with ``s_t >= s_{P_i} - score_sigma_i``.
    Scores fall strictly away from the plateau inside a window, so a gate is one interval.

    Args:
        scores, mask, min_prominence, window, min_height: as :func:`~vadbook.splatting.find_peaks`.
        temporal_sigma: ``"moment"``, ``"width"`` or ``"score"``.

    Returns:
        :class:`TGSKernels`; ``render(k.peaks.is_peak, k.time_sigma, gate=k.gate, reduce="none")``
        gives every kernel ``f_i(t)`` (a heatmap like GS-MoE Fig. 7, row 3).
    """
    valid = check_scores(scores, mask)
    peaks = find_peaks(scores, valid, min_prominence, window, min_height)
    B, T = scores.shape
    s = torch.where(valid, scores.detach(), torch.zeros_like(scores))
    score_sigma, time_sigma = _window_sigmas(s, peaks, temporal_sigma)
    pos = torch.arange(T, device=s.device)
    d = (pos[None, :] - pos[:, None])[None]  # d[., j, t] = t - j
    win = (d >= -peaks.left[:, :, None]) & (d <= peaks.right[:, :, None]) & peaks.is_peak[:, :, None]
    gate = win & ((d == 0) | (s[:, None, :] >= (s - score_sigma)[:, :, None]))
    return TGSKernels(peaks, gate, score_sigma, time_sigma)


def tgs_targets(scores: Tensor, mask: Tensor | None = None, min_prominence: float = 0.1, window: int = 2,
                min_height: float = 0.0, temporal_sigma: str = "moment", norm: str = "clamp",
                kind: str = "normal") -> Tensor:
    """TGS pseudo-labels ``y_hat = ||sum_i f_i(t)||`` (GS-MoE Eq. (3)-(5)), detached, in ``[0, 1]``.

    ``f_i(t) = G_{i,t} k(t - P_i; sigma_i)`` (Eq. (4); ``G`` and ``sigma_i`` as in
    :func:`tgs_kernels`), summed over the peaks and normalised per video. Eq. (5)'s ``||.||``
    is read as ``norm="clamp"`` (default): every ``f_i`` already peaks at ``f_i(P_i) = 1`` and
    kernels of neighbouring peaks can only overlap on the valley snippet between them, so a
    sum above 1 is a local artefact; clamping keeps every kernel's shape and unit height,
    whereas ``"max"`` would rescale all kernels of the video because of one overlapping
    snippet and ``"minmax"`` would also push the lowest value to 0 when kernels cover the video.

    The sum is computed in ``O(B T)``: a window lies inside its peak's rising and falling
    runs, so snippet ``t`` can only be in the windows of the nearest peak at or before it and
    the nearest peak at or after it. The result equals
    ``normalise(render(is_peak, time_sigma, gate=gate, kind=kind, mask=mask), mask, norm)``.

    Targets are pseudo-labels: computed under ``no_grad`` from detached scores; a video
    without peaks (or without valid snippets) gets all zeros.

    Args:
        scores: ``[B, T]`` abnormal scores in ``[0, 1]``.
        mask: ``[B, T]`` bool validity mask.
        min_prominence, window, min_height: peak thresholds, see :func:`~vadbook.splatting.find_peaks`.
        temporal_sigma: Eq. (4) width reading, see :func:`tgs_kernels`.
        norm: ``"clamp"``, ``"max"``, ``"minmax"`` or ``"none"``, see :func:`~vadbook.splatting.normalise`.
        kind: kernel kind (GS-MoE uses ``"normal"``).

    Returns:
        ``[B, T]`` targets, 0 at invalid snippets.
    """
    valid = check_scores(scores, mask)
    with torch.no_grad():
        peaks = find_peaks(scores, valid, min_prominence, window, min_height)
        B, T = scores.shape
        s = torch.where(valid, scores.detach(), torch.zeros_like(scores))
        score_sigma, time_sigma = _window_sigmas(s, peaks, temporal_sigma)
        idx = torch.arange(T, device=s.device).expand(B, T)
        before, after = nearest_true(peaks.is_peak)

        def splat(p: Tensor, reach: Tensor) -> Tensor:  # f_p(t) of peak p = p[b, t], Eq. (3)-(4)
            pc = p.clamp(0, T - 1)
            dist = (idx - pc).abs()
            inside = ((p >= 0) & (p < T) & valid & (dist <= reach.gather(1, pc))
                      & ((dist == 0) | (s >= (s - score_sigma).gather(1, pc))))
            return torch.where(inside, kernel(dist.to(s.dtype), time_sigma.gather(1, pc), kind), 0.0)

        total = splat(before, peaks.right) + torch.where(after != before, splat(after, peaks.left), 0.0)
        return normalise(total, valid, norm)
