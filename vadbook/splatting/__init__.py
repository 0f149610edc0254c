"""Temporal Gaussian splatting, the one implementation behind three chapters.

* :mod:`.kernels`: unit-height kernels (normal, Cauchy, Laplace), rendering on a snippet grid,
  kernel mixtures at arbitrary positions (LEC-VAD Eq. (12)), per-video normalisation.
* :mod:`.peaks`: GS-MoE's peak detection (Sec. 3.1): peaks, prominences, widths.
* :mod:`.tgs`: GS-MoE's Temporal Gaussian Splatting from the peaks (Eq. (3)-(5)).
* :mod:`.glance`: GlanceVAD's glance kernels and Gaussian Kernel Mining (Alg. 1, Eq. (3)-(6)).

Pseudo-label builders (:func:`tgs_targets`, :func:`glance_targets`) return detached targets;
:func:`kernel`, :func:`render` and :func:`mixture` are differentiable for learnable kernels.
The matching losses are in :mod:`vadbook.losses.splat`.
"""
from .glance import glance_indices, glance_mask, glance_sigma, glance_targets, mine_glance_kernels, perturb_glances
from .kernels import KERNELS, NORMS, check_scores, kernel, mixture, nearest_true, normalise, render
from .peaks import PeakInfo, find_peaks
from .tgs import TEMPORAL_SIGMAS, TGSKernels, tgs_kernels, tgs_targets

__all__ = [
    "KERNELS", "NORMS", "TEMPORAL_SIGMAS", "check_scores", "kernel", "render", "mixture", "normalise",
    "nearest_true", "PeakInfo", "find_peaks", "TGSKernels", "tgs_kernels", "tgs_targets",
    "glance_mask", "glance_indices", "perturb_glances", "mine_glance_kernels", "glance_sigma", "glance_targets",
]
