"""Glance supervision: Gaussian kernel mining and rendering (GlanceVAD Sec. 4, Alg. 1, Eq. (3)-(6)).

A glance is one snippet clicked inside an abnormal event. Glances arrive as ``[B, T]`` bool
positions on the batch's time grid, or as ``[B, G]`` long snippet indices padded with -1
(:func:`glance_mask` converts). Kernels sit on every snippet (GlanceVAD fixes their number to
T); a kernel's severity ``o_i`` is 1 on glances (Eq. (5)) and on mined snippets (Eq. (6)) and
0 elsewhere, so rendering only needs the ``[B, T]`` bool of kernel centres.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .kernels import check_scores, kernel as kernel_fn, nearest_true, normalise, render

__all__ = ["glance_mask", "glance_indices", "perturb_glances", "mine_glance_kernels",
           "glance_sigma", "glance_targets"]


def glance_mask(glances: Tensor, T: int, mask: Tensor | None = None) -> Tensor:
    """Glances as a ``[B, T]`` bool of positions.

    Args:
        glances: ``[B, T]`` bool positions, or ``[B, G]`` integer snippet indices padded with -1.
        T: length of the time grid.
        mask: ``[B, T]`` bool validity mask; a glance on an invalid snippet is an error.
    """
    if not torch.is_tensor(glances) or glances.dim() != 2:
        raise ValueError(f"glances must be [B, T] bool or [B, G] long, got {getattr(glances, 'shape', glances)}")
    if glances.dtype == torch.bool:
        if glances.shape[1] != T:
            raise ValueError(f"glances has T = {glances.shape[1]} snippets but the scores have T = {T}")
        out = glances
    elif not glances.is_floating_point():
        g = glances.long()
        if ((g < -1) | (g >= T)).any():
            raise ValueError(f"glance indices must lie in [0, {T - 1}] or be -1 (padding), "
                             f"got range [{int(g.min())}, {int(g.max())}]")
        B = g.shape[0]
        out = torch.zeros(B, T + 1, dtype=torch.bool, device=g.device)
        out = out.scatter(1, torch.where(g >= 0, g, T), True)[:, :T]
    else:
        raise ValueError(f"glances must be bool positions or integer indices, got dtype {glances.dtype}")
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor, got dtype {mask.dtype}")
        if mask.shape != out.shape:
            raise ValueError(f"mask has shape {tuple(mask.shape)} but glances map to {tuple(out.shape)}")
        off = out & ~mask.to(out.device)
        if off.any():
            raise ValueError(f"{int(off.sum())} glances lie on masked (invalid) snippets")
    return out


def glance_indices(glances: Tensor) -> Tensor:
    """``[B, T]`` bool positions -> ``[B, G]`` long indices in increasing order, padded with -1.

    ``G`` is the largest number of glances in a video (0 if there is none).
    """
    B, T = glances.shape
    idx = torch.arange(T, device=glances.device).expand(B, T)
    key = torch.where(glances, idx, torch.full_like(idx, T)).sort(dim=1).values
    G = int(glances.sum(1).max()) if B > 0 else 0
    key = key[:, :G]
    return torch.where(key < T, key, torch.full_like(key, -1))


def perturb_glances(glances: Tensor, max_shift_snippets: int, generator: torch.Generator | None = None,
                    mask: Tensor | None = None) -> Tensor:
    """Random temporal perturbation of glances (GlanceVAD Table 4), within each video.

    Each glance moves by an integer drawn uniformly from ``[-m, m]`` and is clamped to the
    video's valid range ``[first valid, last valid]`` (masks are padded tails). Table 4 shifts
    by frames; on a grid of L snippets for a video of T snippets, ``m = frames / 16 * L / T``.
    Two glances landing on one snippet merge in the bool format.

    Args:
        glances: ``[B, T]`` bool, or ``[B, G]`` long padded with -1 (then ``mask`` is needed
            to know each video's length).
        max_shift_snippets: ``m >= 0``.
        generator: torch Generator for reproducibility (draws happen on its device).
        mask: ``[B, T]`` bool validity mask.

    Returns:
        Glances in the input's format.
    """
    if max_shift_snippets < 0:
        raise ValueError(f"max_shift_snippets must be >= 0, got {max_shift_snippets}")
    as_bool = glances.dtype == torch.bool
    if not as_bool and mask is None:
        raise ValueError("perturb_glances needs mask for [B, G] index glances (to know each video's length)")
    T = glances.shape[1] if as_bool else mask.shape[1]
    valid = mask if mask is not None else torch.ones(glances.shape, dtype=torch.bool, device=glances.device)
    idx = glance_indices(glance_mask(glances, T, valid)) if as_bool else glances.long()
    if not as_bool:
        glance_mask(idx, T, valid)  # validates the indices
    pos = torch.arange(T, device=valid.device)
    first = torch.where(valid, pos, T).amin(1, keepdim=True)
    last = torch.where(valid, pos, -1).amax(1, keepdim=True)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    shift = torch.randint(-max_shift_snippets, max_shift_snippets + 1, idx.shape,
                          generator=generator, device=gen_device).to(idx.device)
    moved = torch.minimum(torch.maximum(idx + shift, first), last)
    moved = torch.where(idx >= 0, moved, torch.full_like(moved, -1))
    return glance_mask(moved, T, valid) if as_bool else moved


def mine_glance_kernels(scores: Tensor, glances: Tensor, alpha: float = 0.9, mask: Tensor | None = None,
                        dynamic: bool = True) -> Tensor:
    """Gaussian Kernel Mining (GlanceVAD Alg. 1): kernel centres = glances + mined snippets.

    From each glance ``g_i`` the walk goes left, then right, one snippet at a time, and adds
    snippet ``t`` while ``A[t] >= alpha * A[g_i]`` (the dynamic threshold; ``dynamic=False``
    uses the fixed threshold ``alpha``, the "Mining" row of Table 3 without "Dynamic"). It
    stops at the first snippet below the threshold, before the neighbouring glance (which is
    a centre already and mines its own side), or at the first (last) valid snippet.

    Readings: ``>=`` rather than Alg. 1's ``>``, as the public code does, so a flat score
    around a glance is mined; the walk reaches the last valid snippet (the public code stops
    one snippet early on the right of the last glance, an off-by-one not reproduced here);
    masked snippets stop a walk. Videos without glances get no centres.

    Batched without loops: a right walk from the nearest glance on the left ``gL(t)`` reaches
    ``t`` iff no snippet in ``(gL(t), t]`` fails the threshold of ``gL(t)``, i.e. a cumulative
    count of failures is the same at ``t`` and at ``gL(t)``; left walks likewise, reversed.

    Args:
        scores: ``[B, T]`` anomaly scores ``A`` (read detached).
        glances: ``[B, T]`` bool or ``[B, G]`` long (-1 padded), see :func:`glance_mask`.
        alpha: anomaly ratio of the threshold (0.9 in GlanceVAD).
        mask: ``[B, T]`` bool validity mask.
        dynamic: threshold ``alpha * A[g_i]`` (True) or ``alpha`` (False).

    Returns:
        ``[B, T]`` bool kernel centres ``G u T^a`` (Eq. (6)).
    """
    valid = check_scores(scores, mask)
    g = glance_mask(glances.to(scores.device), scores.shape[1], valid)
    return _mine(scores, g, valid, alpha, dynamic)


def _mine(scores: Tensor, g: Tensor, valid: Tensor, alpha: float, dynamic: bool) -> Tensor:
    """:func:`mine_glance_kernels` on validated ``[B, T]`` bool glances and mask.

    Right walks and left walks (right walks on the time-reversed videos) run as one batch of
    ``2B`` rows; each snippet's walk starts at the nearest glance at or before it.
    """
    B, T = scores.shape
    s = torch.where(valid, scores.detach(), torch.zeros_like(scores))
    s, g2, v = (torch.cat([x, x.flip(1)]) for x in (s, g, valid))
    idx = torch.arange(T, device=s.device).expand(2 * B, T)
    origin = torch.where(g2, idx, -1).cummax(dim=1).values           # nearest glance on the left
    o = origin.clamp_min(0)
    thr = alpha * s.gather(1, o) if dynamic else alpha
    # failures so far; a masked snippet fails, so a walk never crosses or ends on one
    n_fail = (~v | (s < thr)).cumsum(dim=1)
    reached = (origin >= 0) & (n_fail == n_fail.gather(1, o))         # no failure since the glance
    return g | reached[:B] | reached[B:].flip(1)


def glance_sigma(sigma: float | Tensor, mask: Tensor, unit: str = "axis") -> Tensor:
    """Kernel width in snippets per video, ``[B]``.

    ``unit="axis"``: ``sigma`` is on GlanceVAD's ``[-1, 1]`` time axis, whose first and last
    valid snippets sit at -1 and 1 (spacing ``2 / (T_valid - 1)``), so the width in snippets is
    ``sigma * (T_valid - 1) / 2`` (0.1 -> about 5% of the video). ``unit="snippets"``: as is.
    """
    if unit not in ("axis", "snippets"):
        raise ValueError(f"sigma unit must be 'axis' or 'snippets', got {unit!r}")
    n_valid = mask.sum(dim=1).to(torch.get_default_dtype())
    sig = torch.as_tensor(sigma, dtype=n_valid.dtype, device=mask.device)
    if (sig < 0).any():
        raise ValueError(f"sigma must be >= 0, got {sig.min().item()}")
    if unit == "snippets":
        return sig.expand_as(n_valid).clone()
    return sig * (n_valid - 1).clamp_min(0) / 2


def glance_targets(scores: Tensor, glances: Tensor, alpha: float = 0.9, sigma: float | Tensor = 0.1,
                   kernel: str = "normal", mask: Tensor | None = None, mine: bool = True,
                   dynamic: bool = True, sigma_unit: str = "axis", reduce: str = "max",
                   norm: str = "max") -> Tensor:
    """Rendered glance pseudo-labels ``A_hat`` (GlanceVAD Eq. (3)-(6)), detached, in ``[0, 1]``.

    Kernels with severity 1 sit on the glances (Eq. (5)) and, with ``mine=True``, on the
    snippets mined by :func:`mine_glance_kernels` (Eq. (6)); all share the radius ``r_g =
    sigma``. Eq. (4) writes ``norm(sum_i f_i)``; with kernels on every mined snippet a sum
    grows with the number of adjacent centres, so after normalisation an event with few mined
    snippets (or a lone glance) would be dwarfed by one with many. The default therefore
    composes kernels by their maximum (``reduce="max"``, as the public code does), which keeps
    every centre at 1; ``reduce="sum"`` gives Eq. (4) as written. ``norm="max"`` divides by the
    video's maximum (a no-op after ``"max"`` composition); ``"minmax"`` is the code's choice.
    ``sigma=0`` gives binary labels (Table 3 without "Gaussian"). Videos without glances get
    all zeros. The ``"max"`` rendering costs ``O(B T)``: all kernels of a video share one width
    and decrease with the distance, so their maximum is the kernel of the nearest centre;
    ``"sum"`` goes through :func:`~vadbook.splatting.render` (``O(B T^2)``).

    Args:
        scores: ``[B, T]`` anomaly scores (read detached; used only for mining).
        glances: ``[B, T]`` bool or ``[B, G]`` long (-1 padded).
        alpha: mining ratio, see :func:`mine_glance_kernels`.
        sigma: kernel radius ``r_g``: float or ``[B]``, in ``sigma_unit`` (default the
            ``[-1, 1]`` axis of GlanceVAD, where ``r_g = 0.1``), see :func:`glance_sigma`.
        kernel: ``"normal"``, ``"cauchy"`` or ``"laplace"`` (Table 6).
        mask: ``[B, T]`` bool validity mask.
        mine: mine kernels (True) or render the glances alone (GlanceVAD's first iterations).
        dynamic: dynamic mining threshold, see :func:`mine_glance_kernels`.
        sigma_unit: ``"axis"`` or ``"snippets"``.
        reduce: ``"max"`` or ``"sum"`` over kernels.
        norm: see :func:`normalise`.

    Returns:
        ``[B, T]`` targets, 0 at invalid snippets.
    """
    if reduce not in ("max", "sum"):
        raise ValueError(f"reduce must be 'max' or 'sum', got {reduce!r}")
    valid = check_scores(scores, mask)
    with torch.no_grad():
        T = scores.shape[1]
        g = glance_mask(glances.to(scores.device), T, valid)
        centres = _mine(scores, g, valid, alpha, dynamic) if mine else g
        width = glance_sigma(sigma, valid, sigma_unit).to(scores.dtype)
        if reduce == "sum":
            return normalise(render(centres, width, kind=kernel, mask=valid, reduce="sum"), valid, norm)
        # kernels share a width and fall with |d|: their maximum is the nearest centre's kernel
        before, after = nearest_true(centres)
        pos = torch.arange(T, device=scores.device)
        far = torch.full_like(before, 2 * T)
        dist = torch.minimum(torch.where(before >= 0, pos - before, far), torch.where(after < T, after - pos, far))
        rendered = torch.where(centres.any(1, keepdim=True) & valid,
                               kernel_fn(dist.to(scores.dtype), width[:, None], kernel), 0.0)
        # the maximum is k(0) = 1 in every video with a centre, so "max" and "clamp" change nothing
        return rendered if norm in ("max", "clamp") else normalise(rendered, valid, norm)
