"""Loaders for the public UCF-Crime / XD-Violence feature releases into :class:`Benchmark` objects.

``load_ucf(root)`` / ``load_xd(root)`` (or :func:`load_features`) read a directory holding
one of the public layouts (``reference/formats.md``) and return the same
:class:`~vadbook.data.video.Benchmark` the synthetic benchmark returns, so every chapter runs
on real features unchanged. ``root`` defaults to ``$VADBOOK_DATA``.

The layouts (``rtfm``, ``urdmu``, ``glancevad``, ``vadclip``), their file names and default
lists are in :mod:`vadbook.data.layouts`; files are found by **file name** anywhere under
``root``, so list paths from another machine need no editing. Names and labels follow
:mod:`vadbook.data.annotations`, ground truth (end-exclusive intervals, a snippet is anomalous
if any of its frames is, the ``16 T`` rule, clipping) :mod:`vadbook.data.gt`. Test videos are
:class:`RealVideo` objects whose ``frame_gt`` is the annotated frame labels, so the metrics
match the public ``gt-*.npy`` evaluation. The interval files carry no class, so an event of a
multi-label XD video gets the video's first class.

Crops (UCF 10, XD 5): ``crops`` (training) and ``test_crops`` (validation and test) are each
``"mean"`` (average the crop features: one video), an ``int`` (that crop only; VadCLIP tests
on one crop) or ``"all"`` (one video per crop, named ``Name__c``). The reference code averages
crop *scores* at test time; for that use ``test_crops="all"`` and :func:`~vadbook.data.splits.merge_crops`.

Validation (``val``): the releases have none, and training videos have no temporal ground
truth, so a validation split with frame labels must come from the test annotations:

* ``"holdout"`` (default): a seeded, class-stratified ``val_fraction`` of the test list, removed
  from the test split. Sound (selection never sees a test video), but the test numbers are
  then on the remaining videos, not on the official test set.
* ``"test"``: validation = test, the reference code's practice; reproduces the published
  protocol and warns, since selecting on the test set overstates results.
* ``"glances"``: a stratified ``val_fraction`` of the *training* list, scored against its
  glance snippets (1 at each glance, 0 elsewhere): a proxy that keeps the test set whole.
* ``"none"``, or a list of test video names to hold out.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import annotations as A
from . import gt as G
from .layouts import (ANNOTATION_FILES, CLASSES, DEFAULT_LISTS, FPS, GLANCE_FILES, LAYOUTS, N_CROPS,
                      FileIndex, data_root, list_names, read_crops)
from .splits import stratified_split
from .video import FRAMES_PER_SNIPPET as F
from .video import Benchmark, Video

__all__ = ["RealVideo", "load_features", "load_ucf", "load_xd"]


@dataclass(repr=False)
class RealVideo(Video):
    """A :class:`Video` from a public release, with the exact frame-level ground truth.

    Attributes (beyond :class:`Video`):
        frame_labels: ``[16 T]`` frame ground truth from the annotations (test / holdout
            videos); :attr:`frame_gt` returns it, so metrics use the public frame labels,
            not the snippet ``gt`` repeated.
        gt_kind: ``"frame"`` (annotated), ``"glance"`` (glance-proxy validation) or
            ``"none"`` (training videos: ``gt`` is all zeros and must not be used).
        glance_frames: the glance frames as annotated (for :func:`~vadbook.data.gt.glance_frame_to_grid`).
        crop: the crop index when the video is one crop, ``None`` when averaged.
    """

    frame_labels: np.ndarray | None = None
    gt_kind: str = "none"
    glance_frames: np.ndarray | None = None
    crop: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frame_labels is not None:
            self.frame_labels = np.asarray(self.frame_labels, np.float32)
            if self.frame_labels.shape != (F * self.T,):
                raise ValueError(f"video {self.name!r}: frame_labels has shape {self.frame_labels.shape}, "
                                 f"expected ({F * self.T},) for T = {self.T}")

    @property
    def frame_gt(self) -> np.ndarray:
        """``[16 T]`` frame ground truth: the annotated frames when known, else ``gt`` x 16."""
        return self.frame_labels if self.frame_labels is not None else np.repeat(self.gt, F)


def _crop_list(mode, n_crops: int) -> list[int]:
    if mode in ("mean", "all"):
        return list(range(n_crops))
    if isinstance(mode, (int, np.integer)) and not isinstance(mode, bool) and 0 <= mode < n_crops:
        return [int(mode)]
    raise ValueError(f"crops must be 'mean', 'all' or a crop index in [0, {n_crops}), got {mode!r}")


def _videos(name: str, feats: np.ndarray, mode, crops: list[int], **kw) -> list[RealVideo]:
    """One RealVideo (mean or single crop) or one per crop (``"all"``) from ``[C, T, D]`` features."""
    if mode == "all":
        return [RealVideo(f"{name}__{c}", feats[i], crop=c, **kw) for i, c in enumerate(crops)]
    return [RealVideo(name, feats.mean(axis=0) if mode == "mean" else feats[0],
                      crop=None if mode == "mean" else crops[0], **kw)]


def load_features(root=None, dataset: str = "ucf", layout: str = "urdmu", train_list="auto",
                  test_list="auto", *, crops="mean", test_crops="mean", n_crops: int | None = None,
                  annotations="auto", frame_gt=None, glances="auto", val="holdout",
                  val_fraction: float = 0.2, seed: int = 0, end_inclusive: bool = False,
                  overrun_frames: int = G.OVERRUN_FRAMES, feature_dim: int | None = None) -> Benchmark:
    """Load a public feature release as a :class:`Benchmark` (see the module doc for layouts).

    Args:
        root: directory holding features, lists and annotation files (searched recursively
            by file name); default ``$VADBOOK_DATA``.
        dataset: ``"ucf"`` (UCF-Crime, 13 classes) or ``"xd"`` (XD-Violence, 6, multi-label).
        layout: ``"rtfm"``, ``"urdmu"``, ``"glancevad"`` or ``"vadclip"``.
        train_list, test_list: list files (path, or a name under ``root``); ``"auto"`` looks
            for the layout's default names (:data:`DEFAULT_LISTS`).
        crops: training crops, ``"mean"`` / ``"all"`` / crop index; test_crops: the same for
            validation and test.
        n_crops: crops per video (default UCF 10, XD 5).
        annotations: temporal annotation file, ``"auto"`` for the default name.
        frame_gt: instead of annotations, a concatenated frame array (path to ``.npy`` or
            array, test-list order) or a GlanceVAD JSON (path or dict).
        glances: glance CSV (``video-id,glance``), ``"auto"`` (default name if present) or None.
        val: ``"holdout"``, ``"test"``, ``"glances"``, ``"none"`` or test video names.
        val_fraction, seed: size and seed of the stratified validation split.
        end_inclusive: read annotation ends as inclusive (default: exclusive, as ``gt[s:e]``).
        overrun_frames: tolerance past ``16 T`` for events and glances (clipped with a warning).
        feature_dim: expected ``D`` (checked); default: whatever the files hold, the same for all.

    Returns:
        ``Benchmark(train, val, test, classes, name="<dataset>-<layout>", multi_label)`` of
        :class:`RealVideo`.

    Raises:
        FileNotFoundError: root, a list, an annotation file or a feature file is missing.
        ValueError: bad shapes, NaN / inf features, inconsistent names / labels, ground truth
            not matching ``16 T``, events or glances past the end, a video listed twice.
    """
    if dataset not in N_CROPS:
        raise ValueError(f"unknown dataset {dataset!r}; expected 'ucf' or 'xd'")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if frame_gt is not None and annotations not in ("auto", None, False):
        raise ValueError("give the test ground truth once: annotations=... or frame_gt=..., not both")
    val = "none" if val is None else val
    if isinstance(val, str) and val not in ("holdout", "test", "glances", "none"):
        raise ValueError(f"unknown val {val!r}; expected 'holdout', 'test', 'glances', 'none' or video names")
    n_crops = N_CROPS[dataset] if n_crops is None else int(n_crops)
    train_crops, eval_crops = _crop_list(crops, n_crops), _crop_list(test_crops, n_crops)
    files = FileIndex(data_root(root))
    defaults = DEFAULT_LISTS[(layout, dataset)]
    train_names, train_near = list_names(files, files.resolve(train_list, defaults[:1], "training list"), dataset)
    test_names, test_near = list_names(files, files.resolve(test_list, defaults[1:], "test list"), dataset)
    both = sorted(set(train_names) & set(test_names))
    if both:
        raise ValueError(f"{len(both)} video(s) are in both the training and the test list, e.g. {both[0]!r}")
    labels = {n: A.labels_from_name(n, dataset) for n in train_names + test_names}
    fps, clipped, clipped_glances = FPS[dataset], [], []

    # test: the whole list first (a concatenated frame array follows the full test list)
    test_feats = {n: read_crops(files, n, test_near[n], layout, dataset, eval_crops) for n in test_names}
    Ts = {n: f.shape[1] for n, f in test_feats.items()}
    if frame_gt is not None:
        if isinstance(frame_gt, (str, Path)):
            p = files.resolve(frame_gt, (), "frame ground truth")
            frame_gt = json.loads(p.read_text()) if p.suffix == ".json" else np.load(p)
        truth = {n: (g, None) for n, g in G.array_frame_gt(frame_gt, test_names, Ts, labels).items()}
    else:
        ann = files.resolve(annotations, ANNOTATION_FILES[dataset], "temporal annotation file")
        truth = G.annotation_frame_gt(ann, test_names, Ts, labels, dataset, end_inclusive,
                                      overrun_frames, clipped)

    def test_videos(n: str) -> list[RealVideo]:
        (label, classes), (fl, ranges) = labels[n], truth[n]
        gt = G.snippet_labels(fl)
        events = [] if not label else (G.snippet_events(ranges, classes[0]) if ranges is not None
                                       else G.events_from_snippets(gt, classes[0]))
        return _videos(n, test_feats[n], test_crops, eval_crops, label=label, classes=classes, gt=gt,
                       events=events, frame_labels=fl, gt_kind="frame", fps=fps)

    glance_frames = None
    glance_path = files.resolve(glances, GLANCE_FILES[dataset], "glance file", required=False)
    if glance_path is not None:
        glance_frames = A.read_glances(glance_path)
        unknown = sorted(set(glance_frames) - set(train_names))
        if unknown:
            raise ValueError(f"{glance_path.name}: {len(unknown)} video id(s) are not in the training list, "
                             f"e.g. {unknown[0]!r}")
        normal = [n for n in glance_frames if not labels[n][0]]
        if normal:
            raise ValueError(f"{glance_path.name}: normal training video {normal[0]!r} has glances")

    def train_videos(n: str, mode, which: list[int], as_val: bool) -> list[RealVideo]:
        label, classes = labels[n]
        feats = read_crops(files, n, train_near[n], layout, dataset, which)
        T, snips, frames = feats.shape[1], None, None
        if glance_frames is not None and label:
            frames = glance_frames.get(n, np.zeros(0, np.int64))
            snips, over = G.glance_snippets(n, frames, T, overrun_frames)
            if over > 0:
                clipped_glances.append((n, over))
        gt = np.zeros(T, np.float32)
        if as_val and snips is not None:
            gt[snips] = 1.0
        return _videos(n, feats, mode, which, label=label, classes=classes, gt=gt, glances=snips,
                       glance_frames=frames, gt_kind="glance" if as_val else "none", fps=fps)

    if val == "glances":
        if glance_frames is None:
            raise ValueError("val='glances' needs a glance file (glances=...)")
        train_names, val_names = stratified_split(train_names, labels, val_fraction, seed, "the training list")
        val_v = [v for n in val_names for v in train_videos(n, test_crops, eval_crops, True)]
    elif val == "holdout":
        test_names, val_names = stratified_split(test_names, labels, val_fraction, seed, "the test list")
        val_v = [v for n in val_names for v in test_videos(n)]
    elif not isinstance(val, str):
        missing = sorted(set(val) - set(test_names))
        if missing:
            raise ValueError(f"val names must be test videos; {len(missing)} are not, e.g. {missing[0]!r}")
        test_names, val_names = [n for n in test_names if n not in set(val)], [n for n in test_names if n in set(val)]
        val_v = [v for n in val_names for v in test_videos(n)]
    test_v = [v for n in test_names for v in test_videos(n)]
    if val == "test":
        warnings.warn("val='test': checkpoints are selected on the test set (the reference code's "
                      "practice); the reported test numbers are then optimistic", stacklevel=2)
        val_v = list(test_v)
    elif val == "none":
        val_v = []
    train_v = [v for n in train_names for v in train_videos(n, crops, train_crops, False)]

    want = feature_dim or train_v[0].features.shape[1]
    odd = [v for v in train_v + val_v + test_v if v.features.shape[1] != want]
    if odd:
        raise ValueError(f"video {odd[0].name!r} has D = {odd[0].features.shape[1]}, expected {want} "
                         f"({len(odd)} video(s) differ)")
    for what, items in (("annotated events", clipped), ("glances", clipped_glances)):
        if items:
            worst = max(o for _, o in items)
            warnings.warn(f"{len(items)} video(s) have {what} past the 16*T frames covered by their features "
                          f"(by up to {worst} frames, tolerance {overrun_frames}); clipped: "
                          f"{', '.join(n for n, _ in items[:3])}{', ...' if len(items) > 3 else ''}", stacklevel=2)
    return Benchmark(train_v, val_v, test_v, CLASSES[dataset], name=f"{dataset}-{layout}",
                     multi_label=dataset == "xd")


def load_ucf(root=None, layout: str = "urdmu", **kwargs) -> Benchmark:
    """UCF-Crime features under ``root`` (default ``$VADBOOK_DATA``); see :func:`load_features`."""
    return load_features(root, "ucf", layout, **kwargs)


def load_xd(root=None, layout: str = "urdmu", **kwargs) -> Benchmark:
    """XD-Violence features under ``root`` (default ``$VADBOOK_DATA``); see :func:`load_features`."""
    return load_features(root, "xd", layout, **kwargs)
