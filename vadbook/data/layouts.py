"""What the public feature releases look like on disk, and reading it.

=============  ======================================  ==========================================
layout         feature files                           default lists
=============  ======================================  ==========================================
``rtfm``       ``Name_i3d.npy`` ``[T, crops, 2048]``   ``ucf-i3d.list``, ``ucf-i3d-test.list``
``urdmu``      ``Name__c.npy`` ``[T, 1024]``           ``UCF_Train.list`` / ``XD_Train.list``, ...
``glancevad``  as urdmu, UCF crop 0 is ``Name.npy``    ``ucf-crime.training.csv`` (``video-id``)
``vadclip``    ``Name__c.npy`` ``[T, 512]``            ``ucf_CLIP_rgb.csv`` (``path,label``)
=============  ======================================  ==========================================

Files are found by **file name** anywhere under the data root (:class:`FileIndex`): list
paths, often absolute Windows paths from another machine, are used only for their names.
:func:`read_crops` reads and validates the crop features of one video.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from . import annotations as A

__all__ = ["LAYOUTS", "DEFAULT_LISTS", "ANNOTATION_FILES", "GLANCE_FILES", "FEATURE_DIMS", "N_CROPS",
           "FPS", "CLASSES", "FileIndex", "data_root", "crop_file", "read_crops", "list_names"]

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


class FileIndex:
    """Finds files under ``root`` by name (one recursive walk, on first need).

    ``find`` raises ``FileNotFoundError`` for a missing name and ``ValueError`` when a name
    is ambiguous (two copies under ``root``).
    """

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


def data_root(root) -> Path:
    """``root``, else ``$VADBOOK_DATA``, as an existing directory."""
    root = root if root is not None else os.environ.get("VADBOOK_DATA")
    if not root:
        raise ValueError("no data directory: pass root=... or set the VADBOOK_DATA environment variable")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {root} does not exist")
    return root


def crop_file(name: str, crop: int, layout: str, dataset: str) -> str:
    """File name of one crop of a video (RTFM: the one ``[T, crops, D]`` file)."""
    if layout == "rtfm":
        return f"{name}_i3d.npy"
    if layout == "glancevad" and dataset == "ucf" and crop == 0:
        return f"{name}.npy"
    return f"{name}__{crop}.npy"


def read_crops(files: FileIndex, name: str, near, layout: str, dataset: str, crops: list[int]) -> np.ndarray:
    """``[C, T, D]`` float32 features of the requested crops of one video, validated."""
    arrays = []
    if layout == "rtfm":
        path = files.find(crop_file(name, 0, layout, dataset), f"video {name!r}", near)
        a = np.load(path)
        if a.ndim != 3:
            raise ValueError(f"{path}: RTFM-style features must be [T, crops, D], got shape {a.shape}")
        if max(crops) >= a.shape[1]:
            raise ValueError(f"{path}: has {a.shape[1]} crops, crop {max(crops)} requested")
        arrays = [(path, a[:, c]) for c in crops]
    else:
        for c in crops:
            path = files.find(crop_file(name, c, layout, dataset), f"video {name!r} crop {c}", near)
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


def list_names(files: FileIndex, path: Path, dataset: str) -> tuple[list[str], dict]:
    """Video names of a list in order, and the folder of each first entry when it exists here."""
    order, first = A.list_videos(path, dataset)
    near = {}
    for name, entry in first.items():
        p = Path(entry) if Path(entry).is_absolute() else files.root / entry
        near[name] = p.parent if "\\" not in entry and p.is_file() else None
    return order, near
