"""The data model shared by the synthetic benchmark and the real-feature loaders.

A :class:`Video` is one video as every chapter sees it: snippet features ``[T, D]`` plus its
labels at three granularities (video, event, snippet). A :class:`Benchmark` bundles the
train / val / test splits and the class names of a preset.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FRAMES_PER_SNIPPET = 16
NORMAL = "Normal"


@dataclass
class Video:
    """One video.

    Attributes:
        name: unique video id (file stem for real data).
        features: ``[T, D]`` float32 snippet features (one snippet = 16 frames).
        label: 0 normal, 1 abnormal (the only label a weakly-supervised method may train on).
        classes: anomaly class names of the video, ``()`` for a normal video; several for
            XD-like multi-label videos.
        gt: ``[T]`` float32 snippet-level ground truth in {0, 1}.
        events: ``[(start, end, class), ...]`` in snippets, ``end`` exclusive.
        glances: ``[G]`` int64 snippet indices, one inside each event (abnormal training
            videos only, ``None`` elsewhere), sorted.
        fps: frame rate of the source (30 UCF-Crime, 24 XD-Violence), used only for display.
        strengths: severity in (0, 1] of each event, aligned with ``events`` (synthetic videos
            only; hidden from training, used to analyse which events a method finds).
    """

    name: str
    features: np.ndarray
    label: int
    classes: tuple[str, ...] = ()
    gt: np.ndarray | None = None
    events: list[tuple[int, int, str]] = field(default_factory=list)
    glances: np.ndarray | None = None
    fps: float = 30.0
    strengths: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        f = np.asarray(self.features)
        if f.ndim != 2:
            raise ValueError(f"video {self.name!r}: features must be [T, D], got shape {f.shape}")
        if f.shape[0] == 0:
            raise ValueError(f"video {self.name!r}: features have T = 0 snippets")
        if not np.isfinite(f).all():
            bad = int((~np.isfinite(f)).any(axis=1).sum())
            raise ValueError(f"video {self.name!r}: features contain NaN or inf in {bad} of {f.shape[0]} snippets")
        self.features = f.astype(np.float32, copy=False)
        if self.gt is None:
            self.gt = np.zeros(f.shape[0], np.float32)
            for s, e, _ in self.events:
                self.gt[s:e] = 1.0
        self.gt = np.asarray(self.gt, np.float32)
        if self.gt.shape != (f.shape[0],):
            raise ValueError(
                f"video {self.name!r}: ground truth has {self.gt.shape[0]} snippets but features have {f.shape[0]}")
        for s, e, c in self.events:
            if not 0 <= s < e <= f.shape[0]:
                raise ValueError(f"video {self.name!r}: event ({s}, {e}, {c}) outside [0, {f.shape[0]})")
        if self.glances is not None:
            self.glances = np.asarray(self.glances, np.int64)
            if self.glances.size and (self.glances.min() < 0 or self.glances.max() >= f.shape[0]):
                raise ValueError(
                    f"video {self.name!r}: glance {self.glances.tolist()} outside [0, {f.shape[0]})")

    @property
    def T(self) -> int:
        """Number of snippets."""
        return int(self.features.shape[0])

    @property
    def frame_gt(self) -> np.ndarray:
        """``[16 T]`` frame-level ground truth (each snippet repeated 16 times)."""
        return np.repeat(self.gt, FRAMES_PER_SNIPPET)

    def __repr__(self) -> str:
        cls = "+".join(self.classes) if self.classes else NORMAL
        return f"Video({self.name!r}, T={self.T}, D={self.features.shape[1]}, {cls}, events={len(self.events)})"


@dataclass
class Benchmark:
    """Train / val / test splits of one dataset (synthetic or real) and its class names.

    ``classes`` lists the anomaly classes only (no ``"Normal"``), in a fixed order used for
    class indices everywhere in the book.
    """

    train: list[Video]
    val: list[Video]
    test: list[Video]
    classes: tuple[str, ...]
    name: str = "benchmark"
    multi_label: bool = False

    @property
    def feature_dim(self) -> int:
        return int(self.train[0].features.shape[1])

    def split(self, name: str) -> list[Video]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; expected 'train', 'val' or 'test'")
        return getattr(self, name)

    def __repr__(self) -> str:
        return (f"Benchmark({self.name!r}, train={len(self.train)}, val={len(self.val)}, "
                f"test={len(self.test)}, D={self.feature_dim}, classes={len(self.classes)})")
