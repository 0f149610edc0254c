"""Loop versions of GlanceVAD's Algorithm 1 and Eq. (3)-(6), for teaching and as test oracles.

Written straight from the paper's text, one video, one glance and one snippet at a time, in
Python floats. They are far too slow for training (the batched versions are in
:mod:`vadbook.splatting.glance`), but each line can be read next to Algorithm 1; the tests
check that both agree on random inputs and edge cases, and the glance chapter times them.

The readings are those of :func:`vadbook.splatting.mine_glance_kernels`: a snippet is mined
when its score is ``>=`` the threshold, a walk stops at the first snippet below it, before
the neighbouring glance, or at the first (last) valid snippet, and masked snippets stop it.
``public_right_edge=True`` reproduces the off-by-one of the first public GlanceVAD code, whose
right walk from the last glance ends one snippet early (``range(g + 1, T - 1)``), so the last
snippet of a video is never mined; vadbook does not reproduce it.
"""
from __future__ import annotations

import math

__all__ = ["mine_row_loop", "kernel_value", "normalise_row", "glance_targets_loop"]


def mine_row_loop(A, glances, valid=None, alpha: float = 0.9, dynamic: bool = True,
                  public_right_edge: bool = False) -> set[int]:
    """GlanceVAD Algorithm 1 for one video: the kernel centres ``G u T^a`` (Eq. (6)).

    Args:
        A: ``T`` anomaly scores (a list or 1-d tensor).
        glances: snippet indices of the glances (any order).
        valid: ``T`` bools (None: all valid).
        alpha: anomaly ratio; the threshold of glance ``g`` is ``alpha * A[g]`` (``dynamic``)
            or ``alpha`` itself.
        dynamic: dynamic (True) or fixed threshold.
        public_right_edge: reproduce the public code's off-by-one on the right edge.

    Returns:
        The set of centres: the glances and the mined snippets.
    """
    A = [float(a) for a in A]
    T = len(A)
    valid = [True] * T if valid is None else [bool(v) for v in valid]
    G = sorted(set(int(g) for g in glances))
    centres = set(G)
    last_valid = max([t for t in range(T) if valid[t]], default=-1)
    for i, g in enumerate(G):
        threshold = alpha * A[g] if dynamic else alpha
        stop_left = G[i - 1] if i > 0 else -1                  # walk g-1, g-2, ... down to g_{i-1}
        for t in range(g - 1, stop_left, -1):
            if valid[t] and A[t] >= threshold:
                centres.add(t)
            else:
                break
        stop_right = G[i + 1] if i + 1 < len(G) else T         # walk g+1, g+2, ... up to g_{i+1}
        if public_right_edge and i + 1 == len(G):
            stop_right = last_valid                            # the public off-by-one
        for t in range(g + 1, stop_right):
            if valid[t] and A[t] >= threshold:
                centres.add(t)
            else:
                break
    return centres


def kernel_value(d: float, sigma: float, kind: str = "normal") -> float:
    """Unit-height kernel of offset ``d`` (GlanceVAD Eq. (3) with ``o_i = 1``; Table 6 kinds)."""
    if sigma == 0:
        return 1.0 if d == 0 else 0.0
    z = d / sigma
    if kind == "normal":
        return math.exp(-0.5 * z * z)
    if kind == "cauchy":
        return 1.0 / (1.0 + z * z)
    if kind == "laplace":
        return math.exp(-abs(z))
    raise ValueError(f"kernel kind must be 'normal', 'cauchy' or 'laplace', got {kind!r}")


def normalise_row(row, valid, how: str = "max") -> list[float]:
    """``norm`` of Eq. (4) for one video: ``"max"``, ``"minmax"``, ``"clamp"`` or ``"none"``."""
    vals = [row[t] for t in range(len(row)) if valid[t]]
    if how == "none" or not vals:
        return [row[t] if valid[t] else 0.0 for t in range(len(row))]
    if how == "clamp":
        return [min(max(row[t], 0.0), 1.0) if valid[t] else 0.0 for t in range(len(row))]
    hi, lo = max(vals), min(vals)
    out = []
    for t in range(len(row)):
        if not valid[t]:
            out.append(0.0)
        elif how == "minmax" and hi > lo:
            out.append((row[t] - lo) / (hi - lo))
        else:
            out.append(row[t] / hi if hi > 0 else 0.0)
    return out


def glance_targets_loop(scores, glances, valid, alpha: float = 0.9, sigma: float = 0.1, kind: str = "normal",
                        reduce: str = "max", norm: str = "max", mine: bool = True, dynamic: bool = True,
                        public_right_edge: bool = False) -> list[list[float]]:
    """Rendered pseudo-labels ``A_hat`` (GlanceVAD Eq. (3)-(6)) of a batch, video by video.

    Args:
        scores: ``B`` rows of ``T`` scores.
        glances: ``B`` rows of ``T`` bools (glance positions).
        valid: ``B`` rows of ``T`` bools.
        alpha, dynamic, public_right_edge: see :func:`mine_row_loop`.
        sigma: ``r_g`` on the ``[-1, 1]`` time axis of a video (first / last valid snippet at
            -1 / 1), i.e. ``sigma * (T_valid - 1) / 2`` snippets.
        kind: kernel kind, see :func:`kernel_value`.
        reduce: ``"max"`` or ``"sum"`` over the kernels (``"sum"`` is Eq. (4) as written).
        norm: see :func:`normalise_row`.
        mine: mine kernels (Algorithm 1) or render the glances alone.

    Returns:
        ``B`` rows of ``T`` floats in ``[0, 1]``.
    """
    out = []
    for A, g, v in zip(scores, glances, valid):
        T = len(A)
        G = [t for t in range(T) if g[t]]
        centres = mine_row_loop(A, G, v, alpha, dynamic, public_right_edge) if mine else set(G)
        width = sigma * max(sum(bool(x) for x in v) - 1, 0) / 2
        row = []
        for t in range(T):
            vals = [kernel_value(t - c, width, kind) for c in centres]      # o_i = 1 on the centres
            row.append((sum(vals) if reduce == "sum" else max(vals)) if vals and v[t] else 0.0)
        out.append(normalise_row(row, v, norm))
    return out
