"""Tiny directories in the exact layouts of the public feature releases, for tests and the book.

:func:`make_fixture` writes a few videos of made-up features with the file names, shapes,
list files (with foreign absolute paths, as shipped), annotation files, concatenated frame
ground truth and glance CSV of one public release, so that :func:`vadbook.data.real.load_features`
is exercised on exactly what a reader downloads. Anomalous snippets are shifted along a
class direction, so a short training run learns to find them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .annotations import UCF_CLASSES, XD_CODES
from .layouts import DEFAULT_LISTS, FEATURE_DIMS, LAYOUTS, N_CROPS
from .video import FRAMES_PER_SNIPPET as F

__all__ = ["Fixture", "make_fixture"]

_UCF_PICK = ("Abuse", "Explosion", "RoadAccidents", "Shoplifting")
_XD_PICK = ("B1-0-0", "B2-G-0", "B4-0-0", "G-0-0", "B6-B2-0", "B5-0-0")
_CODE_DIR = {c: i for i, c in enumerate(XD_CODES)}


@dataclass
class Fixture:
    """What :func:`make_fixture` wrote, and the truth behind it (for checks).

    Attributes:
        root, dataset, layout: where and what.
        train, test: video names in list order (abnormal first, as the public lists).
        T: snippets per video; frames: true frame count (``16 T`` + a tail of 0-15 frames).
        events: ``{name: [(s, e_exclusive), ...]}`` frame ranges of every abnormal video.
        glances: ``{name: frames}`` of abnormal training videos.
        paths: ``train_list, test_list, annotations, frame_gt, glances`` (and ``gt_json``
            for the glancevad layout).
    """

    root: Path
    dataset: str
    layout: str
    train: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    T: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    events: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    glances: dict[str, np.ndarray] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def _names(dataset: str, split: str, n_normal: int, n_abnormal: int) -> list[str]:
    off = 0 if split == "train" else 100
    if dataset == "ucf":
        abn = [f"{_UCF_PICK[i % len(_UCF_PICK)]}{off + i + 1:03d}_x264" for i in range(n_abnormal)]
        sep = "" if split == "train" else "_"
        return abn + [f"Normal_Videos{sep}{off + i + 1:03d}_x264" for i in range(n_normal)]
    abn = [(f"Movie.{off + i}.2001__#00-0{i % 10}-00_00-0{i % 10}-40_label_{_XD_PICK[i % len(_XD_PICK)]}"
            if i % 2 == 0 else f"v=Yt{off + i}x__#1_label_{_XD_PICK[i % len(_XD_PICK)]}")
           for i in range(n_abnormal)]
    return abn + [f"Film.{off + i}.1999__#00-1{i % 10}-00_00-1{i % 10}-50_label_A" for i in range(n_normal)]


def _class_dir(dataset: str, name: str) -> int:
    if dataset == "ucf":
        return UCF_CLASSES.index(next(c for c in UCF_CLASSES if name.startswith(c)))
    return _CODE_DIR[name.rsplit("_label_", 1)[1].split("-")[0]]


def _events(rng, T: int, k: int) -> list[tuple[int, int]]:
    """k non-overlapping frame ranges inside the 16 T feature frames, one per equal zone."""
    k = max(1, min(k, T // 4))
    zone = F * T // k
    out = []
    for z in range(k):
        d = int(rng.integers(2 * F, max(2 * F + 1, int(0.6 * zone))))
        s = z * zone + int(rng.integers(0, zone - d + 1))
        out.append((s, s + d))
    return out


def _feature_dir(layout: str, dataset: str, split: str, name: str) -> Path:
    tag = "Train" if split == "train" else "Test"
    if layout == "rtfm":
        return Path(f"{dataset.upper()}_{tag}_ten_crop_i3d")
    if layout == "urdmu":
        if dataset == "ucf":
            return Path("UCF_Crime", "i3d", split)
        return Path("i3d-features", "RGB" if split == "train" else "RGBTest")
    if layout == "glancevad":
        return Path("ucf-crime" if dataset == "ucf" else "xd-violence", "i3d", split)
    if dataset == "xd":
        return Path(f"XD{tag}ClipFeatures")
    cls = next((c for c in UCF_CLASSES if name.startswith(c)), None)
    return Path("UCFClipFeatures", cls or f"{'Training' if split == 'train' else 'Testing'}_Normal_Videos_Anomaly")


def _crop_names(layout: str, dataset: str, name: str, n_crops: int) -> list[str]:
    if layout == "rtfm":
        return [f"{name}_i3d.npy"]
    return [f"{name}.npy" if (layout == "glancevad" and dataset == "ucf" and c == 0) else f"{name}__{c}.npy"
            for c in range(n_crops)]


def _list_line(layout: str, dataset: str, split: str, rel: Path, fname: str, name: str) -> str:
    """One list line with the foreign absolute path style of the release."""
    if layout == "rtfm":
        return (f"/home/yu/yu_ssd/{rel.as_posix()}/{fname}" if split == "train"
                else "C:\\Users\\lab\\features\\" + str(rel).replace("/", "\\") + "\\" + fname)
    if layout == "urdmu":
        return f"E:/DLCode/datasets/{rel.as_posix()}/{fname}"
    if layout == "glancevad":
        return name
    label = name.rsplit("_label_", 1)[1] if dataset == "xd" else next(
        (c for c in UCF_CLASSES if name.startswith(c)), "Normal")
    return f"/home/xbgydx/Desktop/{rel.as_posix()}/{fname},{label}"


def make_fixture(root: str | Path, dataset: str = "ucf", layout: str = "urdmu", n_train: tuple[int, int] = (6, 6),
                 n_test: tuple[int, int] = (4, 4), T_range: tuple[int, int] = (20, 60), dim: int | None = None,
                 n_crops: int | None = None, signal: float | None = None, seed: int = 0,
                 quirk: bool = False) -> Fixture:
    """Write a tiny feature release in one public layout under ``root``.

    Args:
        root: target directory (created).
        dataset: ``"ucf"`` or ``"xd"``; layout: one of :data:`vadbook.data.layouts.LAYOUTS`.
        n_train, n_test: ``(normal, abnormal)`` videos per split.
        T_range: snippets per video, drawn uniformly in ``[lo, hi]``.
        dim: feature size (default the release's: 2048 RTFM, 1024 I3D, 512 CLIP).
        n_crops: crops per video (default UCF 10, XD 5).
        signal: shift of anomalous snippets along their (unit) class direction, in units of
            the noise std; default ``max(4, 0.35 sqrt(D))``, enough for a short MIL run to
            reach a test AUC near 0.9 at any ``D``.
        seed: everything is a function of it.
        quirk: make the first abnormal test video's last event end 2 frames after its true
            last frame, as 5 events of the public UCF annotation do (the loader clips it
            and warns).

    Returns:
        a :class:`Fixture` with the names, the truth and the paths written.
    """
    if layout not in LAYOUTS or dataset not in N_CROPS:
        raise ValueError(f"unknown layout / dataset {layout!r} / {dataset!r}")
    rng = np.random.default_rng([seed, 8])
    D, C = dim or FEATURE_DIMS[layout], n_crops or N_CROPS[dataset]
    signal = max(4.0, 0.35 * D ** 0.5) if signal is None else float(signal)
    root = Path(root)
    fx = Fixture(root, dataset, layout)
    fx.train, fx.test = _names(dataset, "train", *n_train), _names(dataset, "test", *n_test)
    n_dirs = len(UCF_CLASSES) if dataset == "ucf" else len(XD_CODES)
    common = rng.normal(size=D)
    dirs = common + rng.normal(size=(n_dirs, D))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    list_lines = {"train": [], "test": []}
    for split, names in (("train", fx.train), ("test", fx.test)):
        for name in names:
            T = int(rng.integers(T_range[0], T_range[1] + 1))
            fx.T[name], fx.frames[name] = T, F * T + int(rng.integers(0, F))
            x = rng.normal(size=(T, D)) + 0.5 * rng.normal(size=D)
            if "Normal" not in name and "_label_A" not in name:
                ev = _events(rng, T, int(rng.integers(1, 3 if dataset == "ucf" else 4)))
                fx.events[name] = ev
                hit = np.zeros(F * T, bool)
                for s, e in ev:
                    hit[s:e] = True
                x[hit.reshape(T, F).any(axis=1)] += signal * dirs[_class_dir(dataset, name)]
                if split == "train":
                    fx.glances[name] = np.array([int(rng.integers(s, e)) for s, e in ev], np.int64)
            crops = (x[None] + 0.2 * rng.normal(size=(C, T, D))).astype(np.float32)
            folder = _feature_dir(layout, dataset, split, name)
            (root / folder).mkdir(parents=True, exist_ok=True)
            fnames = _crop_names(layout, dataset, name, C)
            if layout == "rtfm":
                np.save(root / folder / fnames[0], crops.transpose(1, 0, 2))
            else:
                for c, fname in enumerate(fnames):
                    np.save(root / folder / fname, crops[c])
            # UR-DMU lists every crop file, VadCLIP every training crop but one test crop
            every = layout in ("urdmu", "rtfm") or (layout == "vadclip" and split == "train")
            listed = fnames if every else fnames[:1]
            list_lines[split] += [_list_line(layout, dataset, split, folder, f, name) for f in listed]
    if quirk:
        name = next(n for n in fx.test if n in fx.events)
        s, _ = fx.events[name][-1]
        fx.events[name][-1] = (s, fx.frames[name] + 2)
    _write_side_files(fx, list_lines)
    return fx


def _write_side_files(fx: Fixture, list_lines: dict) -> None:
    """Lists, annotation file, concatenated GT, glance CSV (and GlanceVAD's JSON GT)."""
    side = fx.root / ("data" if fx.layout == "glancevad" else "list")
    if fx.layout == "glancevad":
        side = side / ("ucf-crime" if fx.dataset == "ucf" else "xd-violence")
    side.mkdir(parents=True, exist_ok=True)
    header = {"glancevad": "video-id\n", "vadclip": "path,label\n"}.get(fx.layout, "")
    train_name, test_name = DEFAULT_LISTS[(fx.layout, fx.dataset)]
    for split, fname in (("train", train_name), ("test", test_name)):
        fx.paths[f"{split}_list"] = side / fname
        (side / fname).write_text(header + "\n".join(list_lines[split]) + "\n")
    lines = []
    for name in fx.test:
        ev = fx.events.get(name, [])
        if fx.dataset == "ucf":
            cls = next((c for c in UCF_CLASSES if name.startswith(c)), "Normal")
            nums = [x for se in ev for x in se] + [-1] * (4 - 2 * len(ev))
            lines.append(f"{name}.mp4  {cls}  " + "  ".join(map(str, nums)) + "  ")
        elif ev:
            lines.append(name + " " + " ".join(str(x) for se in ev for x in se))
    ann = "Temporal_Anomaly_Annotation.txt" if fx.dataset == "ucf" else "annotations.txt"
    fx.paths["annotations"] = side / ann
    (side / ann).write_text("\n".join(lines) + "\n")
    gts = {}
    for name in fx.test:
        g = np.zeros(fx.frames[name] + 2, np.float32)
        for s, e in fx.events.get(name, []):
            g[s:e] = 1.0
        gts[name] = g
    fx.paths["frame_gt"] = side / f"gt-{fx.dataset}.npy"
    np.save(fx.paths["frame_gt"], np.concatenate([gts[n][: F * fx.T[n]] for n in fx.test]))
    if fx.layout == "glancevad":
        tag = "ucf-crime" if fx.dataset == "ucf" else "xd-violence"
        fx.paths["gt_json"] = side / f"{tag}_ground_truth.testing.json"
        fx.paths["gt_json"].write_text(json.dumps(
            {n: {"labels": gts[n][: fx.frames[n]].astype(int).tolist()} for n in fx.test}))
    gname = f"{fx.dataset}_glance_annotations.csv"
    fx.paths["glances"] = side / gname
    rows = [f"{n},{int(g)}" for n in fx.train for g in fx.glances.get(n, [])]
    (side / gname).write_text("video-id,glance\n" + "\n".join(rows) + "\n")
