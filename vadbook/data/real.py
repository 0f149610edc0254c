"""Loaders for the public UCF-Crime / XD-Violence feature releases into :class:`Benchmark` objects.

``load_ucf(root)`` / ``load_xd(root)`` (or :func:`load_features`) read a directory holding
one of the public layouts (``reference/formats.md``) and return the same
:class:`~vadbook.data.video.Benchmark` the synthetic benchmark returns, so every chapter runs
on real features unchanged. ``root`` defaults to ``$VADBOOK_DATA``.

=============  ======================================  ==========================================
layout         feature files                           default lists
=============  ======================================  ==========================================
``rtfm``       ``Name_i3d.npy`` ``[T, crops, 2048]``   ``ucf-i3d.list``, ``ucf-i3d-test.list``
``urdmu``      ``Name__c.npy`` ``[T, 1024]``           ``UCF_Train.list`` / ``XD_Train.list``, ...
``glancevad``  as urdmu, UCF crop 0 is ``Name.npy``    ``ucf-crime.training.csv`` (``video-id``)
``vadclip``    ``Name__c.npy`` ``[T, 512]``            ``ucf_CLIP_rgb.csv`` (``path,label``)
=============  ======================================  ==========================================

Files are found by **file name** anywhere under ``root``: list paths (often absolute Windows
paths from another machine) are only used for their names. Conventions for names, labels,
ground truth (end-exclusive intervals, a snippet is anomalous if any of its frames is, the
``16 T`` rule, clipping) and glances are those of :mod:`vadbook.data.annotations`. Test videos
are :class:`RealVideo` objects whose ``frame_gt`` is the annotated frame labels, so the metrics
match the public ``gt-*.npy`` evaluation. The interval files carry no class, so an event of a
multi-label XD video gets the video's first class.

Crops (UCF 10, XD 5): ``crops`` (training) and ``test_crops`` (validation and test) are each
``"mean"`` (average the crop features: one video), an ``int`` (that crop only; VadCLIP tests
on one crop) or ``"all"`` (one video per crop, named ``Name__c``). The reference code averages
crop *scores* at test time; for that use ``test_crops="all"`` and :func:`merge_crops`.

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

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import annotations as A
from .video import FRAMES_PER_SNIPPET as F
from .video import Benchmark, Video

__all__ = ["RealVideo", "load_features", "load_ucf", "load_xd", "merge_crops", "stratified_split",
           "LAYOUTS", "DEFAULT_LISTS", "FEATURE_DIMS", "N_CROPS"]

LAYOUTS = ("rtfm", "urdmu", "glancevad", "vadclip")
DEFAULT_LISTS = {
    ("rtfm", "ucf"): ("ucf-i3d.list", "ucf-i3d-test.list"), ("rtfm", "xd"): ("rgb.list", "rgbtest.list"),
    ("urdmu", "ucf"): ("UCF_Train.list", "UCF_Test.list"), ("urdmu", "xd"): ("XD_Train.list", "XD_Test.list"),
    ("glancevad", "ucf"): ("ucf-crime.training.csv", "ucf-crime.testing.csv"),
    ("glancevad", "xd"): ("xd-violence.training.csv", "xd-violence.testing.csv"),
    ("vadclip", "ucf"): ("ucf_CLIP_rgb.csv", "ucf_CLIP_rgbtest.csv"),
    ("vadclip", "xd"): ("xd_CLIP_rgb.csv", "xd_CLIP_rgbtest.csv"),
}
ANNOTATION_FILES = {"ucf": ("Temporal_Anomaly_Annotation.txt", "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"),
                    "xd": ("annotations.txt", "XD_Annotation.txt")}
GLANCE_FILES = {"ucf": ("ucf_glance_annotations.csv",), "xd": ("xd_glance_annotations.csv",)}
FEATURE_DIMS = {"rtfm": 2048, "urdmu": 1024, "glancevad": 1024, "vadclip": 512}
N_CROPS = {"ucf": 10, "xd": 5}
FPS = {"ucf": 30.0, "xd": 24.0}
CLASSES = {"ucf": A.UCF_CLASSES, "xd": A.XD_CLASSES}


@dataclass(repr=False)
class RealVideo(Video):
    """A :class:`Video` from a public release, with the exact frame-level ground truth.

    Attributes (beyond :class:`Video`):
        frame_labels: ``[16 T]`` frame ground truth from the annotations (test / holdout
            videos); :attr:`frame_gt` returns it, so metrics use the public frame labels,
            not the snippet ``gt`` repeated.
        gt_kind: ``"frame"`` (annotated), ``"glance"`` (glance-proxy validation) or
            ``"none"`` (training videos: ``gt`` is all zeros and must not be used).
        glance_frames: the glance frames as annotated (for :func:`glance_frame_to_grid`).
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


class _Files:
    """Finds files under ``root`` by name (one recursive walk, on first need)."""

    def __init__(self, root: Path):
        self.root, self._index = root, None

    def _lookup(self, fname: str) -> list[Path]:
        if self._index is None:
            self._index = {}
            for d, _, names in os.walk(self.root):
                for n in names:
                    self._index.setdefault(n, []).append(Path(d) / n)
        return self._index.get(fname, [])

    def find(self, fname: str, what: str, near: Path | None = None) -> Path:
        if near is not None and (near / fname).is_file():
            return near / fname
        hits = self._lookup(fname)
        if not hits:
            raise FileNotFoundError(f"{what}: no file named {fname!r} under {self.root}")
        if len(hits) > 1:
            raise ValueError(f"{what}: {len(hits)} files named {fname!r} under {self.root} "
                             f"({', '.join(map(str, hits[:3]))}); point root at one copy")
        return hits[0]

    def resolve(self, given, defaults: Sequence[str], what: str, required: bool = True) -> Path | None:
        """A user path (absolute, relative to root, or a bare file name), or the first default found."""
        if given is None or given is False:
            return None
        if isinstance(given, (str, Path)) and str(given) != "auto":
            for p in (Path(given), self.root / given):
                if p.is_file():
                    return p
            return self.find(Path(given).name, what)
        for name in defaults:
            if self._lookup(name):
                return self.find(name, what)
        if required:
            raise FileNotFoundError(f"{what}: none of {list(defaults)} under {self.root}; pass its path")
        return None


def _data_root(root) -> Path:
    root = root if root is not None else os.environ.get("VADBOOK_DATA")
    if not root:
        raise ValueError("no data directory: pass root=... or set the VADBOOK_DATA environment variable")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {root} does not exist")
    return root


def _crop_file(name: str, crop: int, layout: str, dataset: str) -> str:
    if layout == "rtfm":
        return f"{name}_i3d.npy"
    if layout == "glancevad" and dataset == "ucf" and crop == 0:
        return f"{name}.npy"
    return f"{name}__{crop}.npy"


def _read_crops(files: _Files, name: str, near, layout: str, dataset: str, crops: list[int]) -> np.ndarray:
    """``[C, T, D]`` float32 features of the requested crops of one video, validated."""
    arrays = []
    if layout == "rtfm":
        path = files.find(_crop_file(name, 0, layout, dataset), f"video {name!r}", near)
        a = np.load(path)
        if a.ndim != 3:
            raise ValueError(f"{path}: RTFM-style features must be [T, crops, D], got shape {a.shape}")
        if max(crops) >= a.shape[1]:
            raise ValueError(f"{path}: has {a.shape[1]} crops, crop {max(crops)} requested")
        arrays = [(path, a[:, c]) for c in crops]
    else:
        for c in crops:
            path = files.find(_crop_file(name, c, layout, dataset), f"video {name!r} crop {c}", near)
            a = np.load(path)
            if a.ndim != 2:
                raise ValueError(f"{path}: per-crop features must be [T, D], got shape {a.shape}")
            arrays.append((path, a))
    shapes = {a.shape for _, a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"video {name!r}: crops differ in shape {sorted(shapes)}")
    for path, a in arrays:
        if a.shape[0] == 0:
            raise ValueError(f"{path}: features have T = 0 snippets")
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            raise ValueError(f"{path}: features contain NaN or inf in {int(bad.sum())} of {a.shape[0]} "
                             f"snippets (first at snippet {int(np.argmax(bad))})")
    return np.stack([a for _, a in arrays]).astype(np.float32)


def _list_names(files: _Files, path: Path, dataset: str) -> tuple[list[str], dict]:
    """Video names of a list in order, and the folder of each first entry when it exists here."""
    order, first = A.list_videos(path, dataset)
    near = {}
    for name, entry in first.items():
        p = Path(entry) if Path(entry).is_absolute() else files.root / entry
        near[name] = p.parent if "\\" not in entry and p.is_file() else None
    return order, near


def stratified_split(names: Sequence[str], labels: dict, fraction: float, seed: int = 0,
                     what: str = "the list") -> tuple[list[str], list[str]]:
    """Seeded split of ``names`` into ``(kept, held_out)``, stratified by first class / Normal.

    Each stratum (names sorted, so list order does not matter) gives ``round(fraction * n)``
    videos but keeps at least one; the held-out part then gets at least one normal and one
    abnormal video (needed for AUC). Both parts keep the input order.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    strata: dict[str, list[str]] = {}
    for n in names:
        strata.setdefault(labels[n][1][0] if labels[n][0] else "Normal", []).append(n)
    held = set()
    for key in sorted(strata):
        members = sorted(strata[key])
        k = min(int(np.floor(fraction * len(members) + 0.5)), len(members) - 1)
        held.update(members[i] for i in rng.permutation(len(members))[:k])
    for want, kind in ((0, "normal"), (1, "abnormal")):
        if not any(labels[n][0] == want for n in held):
            cands = sorted(n for n in names if labels[n][0] == want and n not in held)
            if len(cands) < 2:
                raise ValueError(f"cannot hold out a validation split from {what}: it has {len(cands)} "
                                 f"{kind} video(s), need 2 (one for each side)")
            held.add(cands[int(rng.integers(len(cands)))])
    return [n for n in names if n not in held], [n for n in names if n in held]


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


def merge_crops(scores: Sequence, videos: Sequence[RealVideo]) -> tuple[list[np.ndarray], list[RealVideo]]:
    """Average per-crop snippet scores into one score array per video (the reference test protocol).

    Args:
        scores: ``[T]`` scores per video of a ``crops="all"`` split (e.g. from ``predict``).
        videos: the per-crop videos (``Name__c``), same order.

    Returns:
        ``(scores, videos)`` with one entry per original video, in order of first appearance;
        each merged video has the crop-averaged features and ``crop=None``.
    """
    if len(scores) != len(videos):
        raise ValueError(f"merge_crops: {len(scores)} score arrays for {len(videos)} videos")
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(videos):
        base = v.name.rsplit("__", 1)[0] if getattr(v, "crop", None) is not None else v.name
        groups.setdefault(base, []).append(i)
    out_s, out_v = [], []
    for base, idx in groups.items():
        Ts = {videos[i].T for i in idx} | {len(scores[i]) for i in idx}
        if len(Ts) > 1:
            raise ValueError(f"merge_crops: crops of video {base!r} have different lengths {sorted(Ts)}")
        out_s.append(np.mean([np.asarray(scores[i], np.float64) for i in idx], axis=0))
        feats = np.mean([videos[i].features for i in idx], axis=0)
        out_v.append(dataclasses.replace(videos[idx[0]], name=base, features=feats, crop=None))
    return out_s, out_v


def load_features(root=None, dataset: str = "ucf", layout: str = "urdmu", train_list="auto",
                  test_list="auto", *, crops="mean", test_crops="mean", n_crops: int | None = None,
                  annotations="auto", frame_gt=None, glances="auto", val="holdout",
                  val_fraction: float = 0.2, seed: int = 0, end_inclusive: bool = False,
                  overrun_frames: int = A.OVERRUN_FRAMES, feature_dim: int | None = None) -> Benchmark:
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
    files = _Files(_data_root(root))
    defaults = DEFAULT_LISTS[(layout, dataset)]
    train_names, train_near = _list_names(files, files.resolve(train_list, defaults[:1], "training list"), dataset)
    test_names, test_near = _list_names(files, files.resolve(test_list, defaults[1:], "test list"), dataset)
    both = sorted(set(train_names) & set(test_names))
    if both:
        raise ValueError(f"{len(both)} video(s) are in both the training and the test list, e.g. {both[0]!r}")
    labels = {n: A.labels_from_name(n, dataset) for n in train_names + test_names}
    fps, clipped, clipped_glances = FPS[dataset], [], []

    # test: the whole list first (a concatenated frame array follows the full test list)
    test_feats = {n: _read_crops(files, n, test_near[n], layout, dataset, eval_crops) for n in test_names}
    Ts = {n: f.shape[1] for n, f in test_feats.items()}
    if frame_gt is not None:
        if isinstance(frame_gt, (str, Path)):
            p = files.resolve(frame_gt, (), "frame ground truth")
            frame_gt = json.loads(p.read_text()) if p.suffix == ".json" else np.load(p)
        truth = {n: (g, None) for n, g in A.array_frame_gt(frame_gt, test_names, Ts, labels).items()}
    else:
        ann = files.resolve(annotations, ANNOTATION_FILES[dataset], "temporal annotation file")
        truth = A.annotation_frame_gt(ann, test_names, Ts, labels, dataset, end_inclusive,
                                      overrun_frames, clipped)

    def test_videos(n: str) -> list[RealVideo]:
        (label, classes), (fl, ranges) = labels[n], truth[n]
        gt = A.snippet_labels(fl)
        events = [] if not label else (A.snippet_events(ranges, classes[0]) if ranges is not None
                                       else A.events_from_snippets(gt, classes[0]))
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
        feats = _read_crops(files, n, train_near[n], layout, dataset, which)
        T, snips, frames = feats.shape[1], None, None
        if glance_frames is not None and label:
            frames = glance_frames.get(n, np.zeros(0, np.int64))
            snips, over = A.glance_snippets(n, frames, T, overrun_frames)
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
