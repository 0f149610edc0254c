"""Temporal kernels and their rendering on a snippet axis, shared by every splatting method.

One kernel ``k(d; sigma)`` of a time offset ``d`` with unit height, ``k(0) = 1``:

* ``"normal"``: ``exp(-d^2 / (2 sigma^2))``, GlanceVAD Eq. (3) and GS-MoE Eq. (4);
* ``"cauchy"``: ``1 / (1 + (d / sigma)^2)``, GlanceVAD Table 6;
* ``"laplace"``: ``exp(-|d| / sigma)``, GlanceVAD Table 6.

The width ``sigma`` is the scale of every kind (the Cauchy ``gamma``, the Laplace ``b``). The
densities' normalising constants are dropped: GlanceVAD's code min-max normalises each kernel
to a peak of 1 anyway, and a unit height lets a severity ``o_i`` (GlanceVAD Eq. (3)) or a gate
``G_{i,t}`` (GS-MoE Eq. (3)-(4)) be a plain factor. ``sigma = 0`` gives a unit impulse at
``d = 0`` (binary pseudo-labels, the rows without "Gaussian" of GlanceVAD Table 3).

:func:`render` sums (or maxes) many kernels centred on snippets of a ``[B, T]`` grid;
:func:`mixture` evaluates kernels with arbitrary real centres at arbitrary positions (the
Gaussian mixture masks of LEC-VAD Eq. (12)). Both are differentiable in centres, widths and
heights; the pseudo-label builders that use them work on detached scores.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["KERNELS", "NORMS", "kernel", "render", "mixture", "normalise", "check_scores", "nearest_true"]

KERNELS = ("normal", "cauchy", "laplace")
NORMS = ("clamp", "max", "minmax", "none")
_LOG_FLOOR = -50.0


def check_scores(scores: Tensor, mask: Tensor | None = None, name: str = "scores") -> Tensor:
    """Validate ``[B, T]`` float ``scores`` and a ``[B, T]`` bool mask; return the mask.

    Values at masked snippets are never read, so padding may hold anything. A row with no
    valid snippet is allowed (it yields no peaks and all-zero targets).

    Raises:
        ValueError: wrong rank or dtype, T = 0, shape mismatch, NaN or inf at a valid snippet.
    """
    if not torch.is_tensor(scores) or scores.dim() != 2:
        shape = tuple(scores.shape) if torch.is_tensor(scores) else type(scores).__name__
        raise ValueError(f"{name} must be a [B, T] tensor, got {shape}")
    if not scores.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got dtype {scores.dtype}")
    if scores.shape[1] == 0:
        raise ValueError(f"{name} has T = 0 snippets; a video needs at least one")
    if mask is None:
        return torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    if not torch.is_tensor(mask) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != scores.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but {name} has shape {tuple(scores.shape)}")
    mask = mask.to(scores.device)
    bad = mask & ~torch.isfinite(scores)
    if bad.any():
        raise ValueError(f"{name} hold {int(bad.sum())} NaN or inf values at valid snippets")
    return mask


def _as_float(x, like: Tensor | None = None) -> Tensor:
    """``x`` as a float tensor on ``like``'s device (integers take ``like``'s float dtype)."""
    device = like.device if like is not None else None
    x = torch.as_tensor(x, device=device)
    if x.is_floating_point():
        return x
    return x.to(like.dtype if like is not None and like.is_floating_point() else torch.get_default_dtype())


def kernel(d: Tensor, sigma: Tensor | float, kind: str = "normal") -> Tensor:
    """Unit-height kernel ``k(d; sigma)`` of offsets ``d`` (broadcast with ``sigma``).

    Args:
        d: offsets, any shape, in the unit of ``sigma`` (snippets on a snippet grid).
        sigma: width(s) ``>= 0``, broadcastable to ``d``; 0 gives an impulse ``[d == 0]``.
        kind: ``"normal"``, ``"cauchy"`` or ``"laplace"`` (see the module docstring).

    Returns:
        Values in ``[0, 1]`` of the broadcast shape; differentiable in ``d`` and ``sigma > 0``.
    """
    if kind not in KERNELS:
        raise ValueError(f"kernel kind must be one of {KERNELS}, got {kind!r}")
    d = _as_float(d)
    sigma = _as_float(sigma, d).to(d.dtype)
    if (sigma < 0).any():
        raise ValueError(f"kernel widths must be >= 0, got min {float(sigma.min())}")
    wide = sigma > 0
    impulses = not bool(wide.all())
    z = d / (torch.where(wide, sigma, torch.ones_like(sigma)) if impulses else sigma)  # no 0/0 in the graph
    if kind == "cauchy":
        k = 1.0 / (1.0 + z * z)
    else:
        log_k = -0.5 * z * z if kind == "normal" else -z.abs()
        # exp underflows into subnormals far from the centre, which is slow on CPUs; values
        # below exp(-50) ~ 2e-22 are set to exactly 0
        k = torch.exp(log_k.clamp_min(_LOG_FLOOR)).masked_fill(log_k < _LOG_FLOOR, 0.0)
    return torch.where(wide, k, (d == 0).to(k.dtype)) if impulses else k


def nearest_true(cond: Tensor) -> tuple[Tensor, Tensor]:
    """For each snippet of a ``[B, T]`` bool, the nearest True index at or before it (-1 if
    none) and at or after it (T if none): two running maxima, ``O(B T)``."""
    B, T = cond.shape
    idx = torch.arange(T, device=cond.device).expand(B, T)
    before = torch.where(cond, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    after = T - 1 - torch.where(cond.flip(1), idx, torch.full_like(idx, -1)).cummax(dim=1).values.flip(1)
    return before, after


def _per_centre(x, B: int, T: int, like: Tensor, name: str) -> Tensor:
    """Broadcast a float, ``[B]``, ``[B, 1]`` or ``[B, T]`` value to ``[B, T]``."""
    x = _as_float(x, like).to(like.dtype)
    if x.dim() == 1 and x.shape[0] == B:
        x = x[:, None]
    try:
        return x.expand(B, T)
    except RuntimeError:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; "
                         f"expected a float, [B]=[{B}] or [B, T]=[{B}, {T}]") from None


def render(centres: Tensor, sigma: Tensor | float, height: Tensor | None = None, gate: Tensor | None = None,
           kind: str = "normal", mask: Tensor | None = None, reduce: str = "sum") -> Tensor:
    """Render kernels centred on snippets onto the same ``[B, T]`` snippet grid.

    ``out[b, t] = reduce_j  c[b, j] * h[b, j] * gate[b, j, t] * k(t - j; sigma[b, j])`` over the
    valid centres ``j``, zero at invalid ``t``. With ``reduce="sum"`` this is the splatting sum
    of GS-MoE Eq. (5) (with ``gate`` = Eq. (3)'s ``G_{i,t}``, giving Eq. (4)'s ``f_i``) and of
    GlanceVAD Eq. (4) (with ``height`` = the severities ``o_i``). Cost ``O(B T^2)``.

    Args:
        centres: ``[B, T]`` bool, True where a kernel sits (or float weights).
        sigma: width of each centre's kernel in snippets: a float, ``[B]`` or ``[B, T]``.
        height: ``[B, T]`` kernel heights (None: 1).
        gate: ``[B, T, T]`` factor ``gate[b, j, t]`` of centre ``j`` at position ``t`` (None: 1).
        kind: kernel kind, see :func:`kernel`.
        mask: ``[B, T]`` bool validity mask (None: all valid).
        reduce: ``"sum"``, ``"max"`` (max over centres; 0 where no centre reaches) or
            ``"none"`` for the per-centre contributions ``[B, T(centre j), T(position t)]``.

    Returns:
        ``[B, T]`` rendered values (``[B, T, T]`` with ``reduce="none"``).
    """
    if reduce not in ("sum", "max", "none"):
        raise ValueError(f"reduce must be 'sum', 'max' or 'none', got {reduce!r}")
    if centres.dim() != 2:
        raise ValueError(f"centres must be [B, T], got shape {tuple(centres.shape)}")
    B, T = centres.shape
    dtype = torch.get_default_dtype()
    for x in (sigma, height):
        if torch.is_tensor(x) and x.is_floating_point():
            dtype = x.dtype
    like = torch.zeros((), dtype=dtype, device=centres.device)
    valid = check_scores(centres.to(dtype), mask, name="centres")
    w = centres.to(dtype) * valid
    if height is not None:
        w = w * _per_centre(height, B, T, like, "height")
    sig = _per_centre(sigma, B, T, like, "sigma")
    pos = torch.arange(T, device=centres.device, dtype=dtype)
    d = pos[None, None, :] - pos[None, :, None]  # d[., j, t] = t - j
    contrib = w[:, :, None] * kernel(d, sig[:, :, None], kind)
    if gate is not None:
        if gate.shape != (B, T, T):
            raise ValueError(f"gate has shape {tuple(gate.shape)}, expected [B, T, T] = [{B}, {T}, {T}]")
        contrib = contrib * gate.to(dtype)
    contrib = contrib * valid[:, None, :]
    if reduce == "none":
        return contrib
    if reduce == "sum":
        return contrib.sum(dim=1)
    return contrib.amax(dim=1)


def mixture(x: Tensor, means: Tensor, sigma: Tensor | float, weights: Tensor | None = None,
            kind: str = "normal", valid: Tensor | None = None) -> Tensor:
    """Kernel mixture ``sum_k w_k k(x_p - mu_k; sigma_k)`` at query positions ``x_p``.

    Centres, positions and widths are real numbers in any common unit. For LEC-VAD Eq. (12),
    ``G^t(t) = sum_c alpha_c^t exp(-beta (t/T - mu_c^t)^2 / (sigma_c^t)^2)``, call
    ``mixture(x=(t/T)[..., None], means=mu, sigma=sigma / sqrt(2 * beta), weights=alpha)`` with
    ``x`` ``[B, T, 1]`` and ``mu, sigma, alpha`` ``[B, T, C]``: the result ``[B, T, 1]`` is
    ``s_gmm``. Differentiable in all inputs.

    Args:
        x: ``[..., P]`` query positions.
        means, sigma, weights, valid: ``[..., K]`` component centres, widths (>= 0), weights
            (None: 1) and a bool component mask (None: all); leading dims broadcast with ``x``.
        kind: kernel kind, see :func:`kernel`.

    Returns:
        ``[..., P]`` mixture values.
    """
    sig = _as_float(sigma, means)
    k = kernel(x[..., :, None] - means[..., None, :], sig[..., None, :] if sig.dim() else sig, kind)
    if weights is not None:
        k = k * weights[..., None, :]
    if valid is not None:
        k = k * valid[..., None, :].to(k.dtype)
    return k.sum(dim=-1)


def normalise(values: Tensor, mask: Tensor | None = None, how: str = "max") -> Tensor:
    """Per-video normalisation ``||.||`` of rendered kernels into ``[0, 1]`` (0 at invalid snippets).

    * ``"clamp"``: ``min(x, 1)`` (clamped at 0 too); keeps each kernel's shape and height;
    * ``"max"``: ``x / max_t x``; an all-zero video stays zero;
    * ``"minmax"``: ``(x - min) / (max - min)`` as GlanceVAD's code; a constant video falls
      back to ``"max"`` (all ones if positive);
    * ``"none"``: unchanged apart from the mask.
    """
    if how not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {how!r}")
    valid = check_scores(values, mask, name="rendered values")
    x = torch.where(valid, values, torch.zeros_like(values))
    if how == "none":
        return x
    if how == "clamp":
        return x.clamp(0, 1)
    vmax = torch.where(valid, x, torch.full_like(x, float("-inf"))).amax(dim=1, keepdim=True)
    by_max = torch.where(vmax > 0, x / torch.where(vmax > 0, vmax, torch.ones_like(vmax)), torch.zeros_like(x))
    if how == "max":
        return by_max.clamp(0, 1) * valid
    vmin = torch.where(valid, x, torch.full_like(x, float("inf"))).amin(dim=1, keepdim=True)
    rng = vmax - vmin
    ok = torch.isfinite(rng) & (rng > 0)
    by_range = (x - vmin) / torch.where(ok, rng, torch.ones_like(rng))
    return torch.where(ok, by_range, by_max).clamp(0, 1) * valid
