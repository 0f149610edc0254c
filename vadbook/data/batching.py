"""Fixed-length resampling and balanced normal / abnormal batching.

Training batches hold videos of equal length L. The I3D code bases (Sultani, RTFM, UR-DMU,
GlanceVAD) *resample* every video to L segments by mean-pooling bins; VadCLIP instead pools
only videos longer than L and zero-pads shorter ones, keeping a validity mask. Both are here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .gt import glance_frame_to_grid
from .video import Video


def resample_edges(T: int, L: int) -> np.ndarray:
    """Bin edges of the public resampling: ``linspace(0, T, L + 1)`` cast to int. ``[L + 1]``."""
    if T < 1 or L < 1:
        raise ValueError(f"resampling needs T >= 1 and L >= 1, got T={T}, L={L}")
    return np.linspace(0, T, L + 1).astype(int)


def resample(features: np.ndarray, L: int) -> np.ndarray:
    """Resample ``[T, ...]`` to ``[L, ...]`` exactly as the public I3D code does.

    Each bin ``[e_i, e_{i+1})`` is mean-pooled; an empty bin (``T < L``) takes ``features[e_i]``.
    Computed with one cumulative sum, no loop over bins.
    """
    x = np.asarray(features, dtype=np.float64)
    edges = resample_edges(x.shape[0], L)
    lo, hi = edges[:-1], edges[1:]
    csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    count = (hi - lo).reshape((-1,) + (1,) * (x.ndim - 1))
    pooled = (csum[hi] - csum[lo]) / np.maximum(count, 1)
    out = np.where(count > 0, pooled, x[np.minimum(lo, x.shape[0] - 1)])
    return out.astype(np.asarray(features).dtype if np.asarray(features).dtype.kind == "f" else np.float32)


def glance_to_grid(glance_snippet: np.ndarray, T: int, L: int) -> np.ndarray:
    """Map snippet indices of a T-snippet video to the L grid, as GlanceVAD: ``int(g / T * L)``."""
    g = np.asarray(glance_snippet, dtype=np.float64)
    return np.minimum((g / T * L).astype(int), L - 1)


def to_grid(video: Video, L: int, mode: str = "resample") -> dict[str, np.ndarray]:
    """One video on a length-L grid: features ``[L, D]``, mask ``[L]``, gt ``[L]``, glances ``[L]``.

    ``mode="resample"``: every video is resampled to L (UR-DMU, GlanceVAD; mask all True).
    ``mode="pad"``: videos longer than L are resampled, shorter ones zero-padded (VadCLIP).
    """
    if mode not in ("resample", "pad"):
        raise ValueError(f"unknown batching mode {mode!r}; expected 'resample' or 'pad'")
    T = video.T
    n = L if (mode == "resample" or T > L) else T
    feats = resample(video.features, n) if n != T else video.features
    gt = resample(video.gt, n) if n != T else video.gt
    glances = np.zeros(L, bool)
    frames = getattr(video, "glance_frames", None)   # real data: GlanceVAD maps the frame
    if frames is not None and len(frames) and n != T:
        glances[glance_frame_to_grid(frames, T, n)] = True
    elif video.glances is not None and len(video.glances):
        glances[glance_to_grid(video.glances, T, n) if n != T else video.glances] = True
    out_x = np.zeros((L, feats.shape[1]), np.float32)
    out_x[:n] = feats
    mask = np.zeros(L, bool)
    mask[:n] = True
    out_gt = np.zeros(L, np.float32)
    out_gt[:n] = gt
    return {"x": out_x, "mask": mask, "gt": out_gt, "glances": glances}


@dataclass
class BalancedBatcher:
    """Draws balanced batches: ``batch_size`` normal videos, then ``batch_size`` abnormal ones.

    All training videos are put on the L grid once (``[N, L, D]`` tensors), so a step is a
    single index operation. Batches are dicts of tensors on ``device``:

    - ``x`` ``[2B, L, D]``, ``mask`` ``[2B, L]`` bool, ``label`` ``[2B]`` float,
    - ``class_idx`` ``[2B]`` long (-1 for normal; first class of a multi-label video),
    - ``classes`` ``[2B, C]`` float multi-hot video classes (weak labels),
    - ``glances`` ``[2B, L]`` bool, ``index`` ``[2B]`` long (position in ``videos``),
    - ``gt`` ``[2B, L]``: the hidden snippet truth, for figures and diagnostics only; no
      weakly-supervised loss may read it.
    """

    videos: list[Video]
    class_names: tuple[str, ...]
    batch_size: int = 16
    seq_len: int = 64
    mode: str = "resample"
    seed: int = 0
    device: torch.device | str = "cpu"

    def __post_init__(self):
        labels = np.array([v.label for v in self.videos])
        self.normal_idx = np.flatnonzero(labels == 0)
        self.abnormal_idx = np.flatnonzero(labels == 1)
        if len(self.normal_idx) == 0 or len(self.abnormal_idx) == 0:
            raise ValueError(f"balanced batches need normal and abnormal videos; got "
                             f"{len(self.normal_idx)} normal and {len(self.abnormal_idx)} abnormal")
        if self.batch_size < 1 or self.seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {self.batch_size}, {self.seq_len}")
        grids = [to_grid(v, self.seq_len, self.mode) for v in self.videos]
        cls_index = {c: i for i, c in enumerate(self.class_names)}
        multi_hot = np.zeros((len(self.videos), len(self.class_names)), np.float32)
        for i, v in enumerate(self.videos):
            for c in v.classes:
                if c not in cls_index:
                    raise ValueError(f"video {v.name!r}: class {c!r} not in {self.class_names}")
                multi_hot[i, cls_index[c]] = 1
        first = np.array([cls_index[v.classes[0]] if v.classes else -1 for v in self.videos])
        dev = torch.device(self.device)
        self.data = {
            "x": torch.from_numpy(np.stack([g["x"] for g in grids])).to(dev),
            "mask": torch.from_numpy(np.stack([g["mask"] for g in grids])).to(dev),
            "gt": torch.from_numpy(np.stack([g["gt"] for g in grids])).to(dev),
            "glances": torch.from_numpy(np.stack([g["glances"] for g in grids])).to(dev),
            "label": torch.tensor(labels, dtype=torch.float32, device=dev),
            "class_idx": torch.tensor(first, dtype=torch.long, device=dev),
            "classes": torch.from_numpy(multi_hot).to(dev),
            "index": torch.arange(len(self.videos), device=dev),
        }
        self.rng = np.random.default_rng(self.seed)

    def sample(self) -> dict[str, torch.Tensor]:
        """One balanced batch (normal half first), drawn with replacement across steps."""
        n = self.rng.choice(self.normal_idx, self.batch_size, replace=len(self.normal_idx) < self.batch_size)
        a = self.rng.choice(self.abnormal_idx, self.batch_size, replace=len(self.abnormal_idx) < self.batch_size)
        idx = torch.from_numpy(np.concatenate([n, a])).to(self.data["x"].device)
        return {k: v[idx] for k, v in self.data.items()}

    def all(self) -> dict[str, torch.Tensor]:
        """Every training video on the grid, in ``videos`` order (for pseudo-label figures)."""
        return dict(self.data)


def pad_batch(videos: list[Video], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Full-length videos zero-padded to the longest: ``x`` ``[B, T_max, D]``, ``mask`` ``[B, T_max]``."""
    T_max = max(v.T for v in videos)
    D = videos[0].features.shape[1]
    x = np.zeros((len(videos), T_max, D), np.float32)
    mask = np.zeros((len(videos), T_max), bool)
    for i, v in enumerate(videos):   # copying into a buffer; the compute stays batched
        if v.features.shape[1] != D:
            raise ValueError(f"video {v.name!r} has D={v.features.shape[1]}, expected {D}")
        x[i, : v.T] = v.features
        mask[i, : v.T] = True
    return torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device)
