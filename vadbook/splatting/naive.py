"""Loop versions of GS-MoE's peak detection and Temporal Gaussian Splatting, for teaching and tests.

Written straight from the text of GS-MoE Sec. 3.1, one video, one peak and one snippet at a
time, in Python floats. They are far too slow for training (the batched versions are
:func:`vadbook.splatting.find_peaks` and :func:`vadbook.splatting.tgs_targets`), but each
line can be read next to the paper; the tests check that both agree on random inputs and
edge cases, and the TGS chapter times them against each other.

The readings are those stated in :func:`vadbook.splatting.find_peaks` and
:func:`vadbook.splatting.tgs_kernels`: one peak per plateau of equal scores, at its middle;
prominence over at most ``window`` valid scores on each side, each side stopping before a
score above the peak; absent sides do not count; ``W = min(v1, v2)`` over the sides that exist.
"""
from __future__ import annotations

import math

from .naive_glance import kernel_value, normalise_row

__all__ = ["find_peaks_row_loop", "tgs_targets_loop"]


def find_peaks_row_loop(s, valid=None, min_prominence: float = 0.1, window: int = 2,
                        min_height: float = 0.0) -> dict[int, tuple]:
    """Peaks of one video's scores (GS-MoE Sec. 3.1, "Peak detection").

    Args:
        s: ``T`` scores.
        valid: ``T`` bools (None: all valid).
        min_prominence, window, min_height: see :func:`vadbook.splatting.find_peaks`.

    Returns:
        ``{P: (prominence, v1, v2, W, left, right, is_peak)}`` for every local maximum ``P``;
        the kernel window of Eq. (3) is ``[P - left, P + right]``.
    """
    s = [float(x) for x in s]
    T = len(s)
    valid = [True] * T if valid is None else [bool(v) for v in valid]
    found = {}
    for t in range(T):
        if not valid[t]:
            continue
        a = t                                   # the plateau of equal scores around t
        while a - 1 >= 0 and valid[a - 1] and s[a - 1] == s[t]:
            a -= 1
        b = t
        while b + 1 < T and valid[b + 1] and s[b + 1] == s[t]:
            b += 1
        if t != (a + b) // 2:                   # one peak per plateau, at its middle
            continue
        has_left = a - 1 >= 0 and valid[a - 1]
        has_right = b + 1 < T and valid[b + 1]
        if (has_left and s[a - 1] > s[t]) or (has_right and s[b + 1] > s[t]):
            continue                            # not a local maximum
        left_scores, u = [], a - 1              # "the previous two scores" (up to a higher one) ...
        while len(left_scores) < window and u >= 0 and valid[u] and s[u] <= s[t]:
            left_scores.append(s[u])
            u -= 1
        right_scores, u = [], b + 1             # ... "and the subsequent two"
        while len(right_scores) < window and u < T and valid[u] and s[u] <= s[t]:
            right_scores.append(s[u])
            u += 1
        bases = [min(x) for x in (left_scores, right_scores) if x]
        prominence = s[t] - max(bases) if bases else 0.0
        v1, u = 0, a                            # preceding snippets with increasing scores
        while u - 1 >= 0 and valid[u - 1] and s[u - 1] < s[u]:
            v1, u = v1 + 1, u - 1
        v2, u = 0, b                            # following snippets with decreasing scores
        while u + 1 < T and valid[u + 1] and s[u + 1] < s[u]:
            v2, u = v2 + 1, u + 1
        sides = [v for v, there in ((v1, has_left), (v2, has_right)) if there]
        W = min(sides) if sides else 0          # W_i = minimum(v1, v2)
        left, right = t - a + min(W, v1), b - t + min(W, v2)
        is_peak = prominence >= min_prominence and s[t] >= min_height
        found[t] = (prominence, v1, v2, W, left, right, is_peak)
    return found


def tgs_targets_loop(scores, valid=None, min_prominence: float = 0.1, temporal_sigma: str = "moment",
                     norm: str = "clamp", kind: str = "normal", window: int = 2) -> list[list[float]]:
    """TGS pseudo-labels ``y_hat`` (GS-MoE Eq. (3)-(5)) of a batch, video by video, peak by peak.

    Args:
        scores: ``B`` rows of ``T`` scores.
        valid: ``B`` rows of ``T`` bools (None: all valid).
        min_prominence, window: peak detection, see :func:`find_peaks_row_loop`.
        temporal_sigma, norm, kind: see :func:`vadbook.splatting.tgs_targets`.

    Returns:
        ``B`` rows of ``T`` floats.
    """
    out = []
    for b, s in enumerate(scores):
        s = [float(x) for x in s]
        T = len(s)
        v = [True] * T if valid is None else [bool(x) for x in valid[b]]
        total = [0.0] * T
        for P, (_, _, _, _, left, right, is_peak) in find_peaks_row_loop(s, v, min_prominence, window).items():
            if not is_peak:
                continue
            win = range(P - left, P + right + 1)                                   # t in W_i
            vals = [s[t] for t in win]
            mean = sum(vals) / len(vals)
            score_sd = math.sqrt(sum((x - mean) ** 2 for x in vals) / len(vals))  # sigma_i of Eq. (3)
            if temporal_sigma == "moment":                                          # sigma_i of Eq. (4)
                mass = sum(s[t] for t in win)
                width = math.sqrt(sum(s[t] * (t - P) ** 2 for t in win) / mass) if mass > 0 else 0.0
            elif temporal_sigma == "width":
                width = max(left, right)
            else:
                width = score_sd
            for t in range(T):
                G = t == P or (t in win and s[t] >= s[P] - score_sd)               # Eq. (3)
                if G and v[t]:
                    total[t] += kernel_value(t - P, width, kind)                   # Eq. (4), summed: Eq. (5)
        out.append(normalise_row(total, v, norm))                                  # ||.|| of Eq. (5)
    return out
