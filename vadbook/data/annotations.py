"""Parsing the public UCF-Crime / XD-Violence list, annotation and glance files.

Pure functions from text (file names, list lines, annotation lines) to names and numbers;
:mod:`vadbook.data.gt` turns the numbers into ground truth and :mod:`vadbook.data.real` puts
everything together. The conventions (all stated in ``reference/formats.md``):

* **Names.** A list entry is a path or an id; only its file name counts (foreign absolute
  paths, Windows ``\\`` or ``/``). :func:`video_id` strips the directory, ``.npy`` / ``.mp4``,
  the crop suffix ``__c`` and RTFM's ``_i3d``.
* **Labels from names.** UCF: ``Normal`` in the name means normal, otherwise the class is
  the prefix before the 3-digit index (``Abuse028_x264`` -> Abuse). XD: the ``-``-separated
  codes after ``_label_`` (``A`` normal, ``0`` pads; multi-label).
* **Intervals as written.** :func:`read_temporal_annotations` returns the frame pairs of a
  line unchanged (``-1 -1`` = no event); the end convention is applied in
  :func:`vadbook.data.gt.clip_intervals`.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

UCF_CLASSES = ("Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting",
               "RoadAccidents", "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism")
XD_CLASSES = ("Fighting", "Shooting", "Riot", "Abuse", "CarAccident", "Explosion")
XD_CODES = {"B1": "Fighting", "B2": "Shooting", "B4": "Riot", "B5": "Abuse",
            "B6": "CarAccident", "G": "Explosion"}

__all__ = ["UCF_CLASSES", "XD_CLASSES", "XD_CODES", "video_id", "labels_from_name", "read_list",
           "list_videos", "read_temporal_annotations", "read_glances"]

_CROP = re.compile(r"__(\d+)$")
_UCF_CLASS = re.compile(r"^([A-Za-z]+?)\d{3}")


def video_id(entry: str) -> tuple[str, int | None]:
    """``(video name, crop index or None)`` of a list entry, path or glance id.

    ``E:\\feats\\Abuse028_x264__3.npy`` -> ``("Abuse028_x264", 3)``;
    ``/home/u/Abuse028_x264_i3d.npy`` -> ``("Abuse028_x264", None)``.
    """
    base = re.split(r"[\\/]", entry.strip())[-1]
    for ext in (".npy", ".mp4"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    crop = None
    m = _CROP.search(base)
    if m:
        crop, base = int(m.group(1)), base[: m.start()]
    if base.endswith("_i3d"):
        base = base[: -len("_i3d")]
    if not base:
        raise ValueError(f"cannot read a video name from list entry {entry!r}")
    return base, crop


def labels_from_name(name: str, dataset: str) -> tuple[int, tuple[str, ...]]:
    """``(label, classes)`` of a video from its name (see the module doc).

    Raises:
        ValueError: an unknown UCF class prefix or XD class code, or an XD name without
            ``_label_``.
    """
    if dataset == "ucf":
        if "Normal" in name:
            return 0, ()
        m = _UCF_CLASS.match(name)
        if not m or m.group(1) not in UCF_CLASSES:
            got = m.group(1) if m else name
            raise ValueError(f"video {name!r}: unknown UCF-Crime class {got!r}; expected 'Normal' in the "
                             f"name or one of {UCF_CLASSES} followed by a 3-digit index")
        return 1, (m.group(1),)
    if dataset == "xd":
        if "_label_" not in name:
            raise ValueError(f"video {name!r}: XD-Violence names carry '_label_<codes>', none found")
        codes = [c for c in name.rsplit("_label_", 1)[1].split("-") if c != "0"]
        if codes == ["A"]:
            return 0, ()
        unknown = [c for c in codes if c not in XD_CODES]
        if unknown or not codes:
            raise ValueError(f"video {name!r}: unknown XD-Violence class code(s) {unknown or codes}; "
                             f"expected 'A' alone or codes from {sorted(XD_CODES)} ('0' pads)")
        return 1, tuple(dict.fromkeys(XD_CODES[c] for c in codes))
    raise ValueError(f"unknown dataset {dataset!r}; expected 'ucf' or 'xd'")


def read_list(path: str | Path) -> list[tuple[str, str | None]]:
    """Entries of a split list: ``[(path or id, label column or None), ...]`` in file order.

    Plain text lists (``UCF_Train.list``, ``ucf-i3d.list``, ``rgb.list``) have one path per
    line; CSV lists have a header with ``path`` (VadCLIP, plus ``label``) or ``video-id``
    (GlanceVAD).
    """
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise ValueError(f"list file {path} is empty")
    header = [h.strip() for h in lines[0].split(",")]
    if "path" in header or "video-id" in header:
        col = header.index("path" if "path" in header else "video-id")
        lab = header.index("label") if "label" in header else None
        rows = list(csv.reader(lines[1:]))
        bad = [i + 2 for i, r in enumerate(rows) if len(r) != len(header)]
        if bad:
            raise ValueError(f"list file {path}: line {bad[0]} has a different number of columns than "
                             f"the header {header}")
        return [(r[col].strip(), r[lab].strip() if lab is not None else None) for r in rows]
    return [(ln, None) for ln in lines]


def list_videos(path: str | Path, dataset: str) -> tuple[list[str], dict[str, str]]:
    """Video names of a split list in order of first appearance, and each one's first entry.

    A list may name each crop file (UR-DMU, VadCLIP) or each video once. A CSV ``label``
    column must agree with the name.

    Raises:
        ValueError: the same (video, crop) listed twice, or a label that disagrees with the name.
    """
    path = Path(path)
    order, first, seen = [], {}, set()
    for entry, lab in read_list(path):
        name, crop = video_id(entry)
        if (name, crop) in seen:
            what = f"video {name!r}" + (f" crop {crop}" if crop is not None else "")
            raise ValueError(f"{path.name}: {what} is listed twice")
        seen.add((name, crop))
        label, classes = labels_from_name(name, dataset)
        if lab is not None:
            if dataset == "ucf":
                ok = lab == (classes[0] if label else "Normal")
            else:
                codes = [c for c in lab.split("-") if c != "0"]
                ok = (codes == ["A"] and not label) or {XD_CODES.get(c) for c in codes} == set(classes)
            if not ok:
                raise ValueError(f"{path.name}: video {name!r} has label {lab!r} in the list but "
                                 f"{'+'.join(classes) or 'Normal'} in its name")
        if name not in first:
            order.append(name)
            first[name] = entry
    return order, first


def _pairs(nums: list[int], where: str) -> list[tuple[int, int]]:
    if len(nums) % 2:
        raise ValueError(f"{where}: {len(nums)} frame numbers, expected start/end pairs")
    out = []
    for s, e in zip(nums[::2], nums[1::2]):
        if s == -1 and e == -1:
            continue
        if s < 0 or e <= s:
            raise ValueError(f"{where}: interval ({s}, {e}) is not a valid start < end frame pair")
        out.append((s, e))
    return out


def read_temporal_annotations(path: str | Path, dataset: str) -> dict[str, list[tuple[int, int]]]:
    """Frame intervals per test video from ``Temporal_Anomaly_Annotation.txt`` (UCF:
    ``Name  Class  s1  e1  s2  e2``, ``-1`` = none) or XD ``annotations.txt``
    (``name s1 e1 s2 e2 ...``). Intervals are returned as written (ends not shifted).

    Raises:
        ValueError: a malformed line (named by line number), a UCF class that disagrees with
            the name, or a video annotated twice.
    """
    path = Path(path)
    out: dict[str, list[tuple[int, int]]] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path.name} line {i}"
        name = video_id(parts[0])[0]
        rest = parts[1:]
        if dataset == "ucf":
            if not rest:
                raise ValueError(f"{where}: expected 'Name Class s1 e1 s2 e2', got {line.strip()!r}")
            cls, rest = rest[0], rest[1:]
            label, classes = labels_from_name(name, "ucf")
            if cls != (classes[0] if label else "Normal"):
                raise ValueError(f"{where}: class {cls!r} disagrees with the video name {name!r}")
        try:
            nums = [int(x) for x in rest]
        except ValueError:
            raise ValueError(f"{where}: frame numbers must be integers, got {rest}") from None
        if name in out:
            raise ValueError(f"{where}: video {name!r} is annotated twice")
        out[name] = _pairs(nums, where)
    return out


def read_glances(path: str | Path) -> dict[str, np.ndarray]:
    """Glance frames per video from a ``video-id,glance`` CSV (GlanceVAD), sorted ``[G]`` int64."""
    path = Path(path)
    header = (path.read_text(encoding="utf-8-sig").splitlines() or [""])[0].split(",")
    if [h.strip() for h in header] != ["video-id", "glance"]:
        raise ValueError(f"glance file {path}: header must be 'video-id,glance', got {header}")
    with path.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, list[int]] = {}
    for i, r in enumerate(rows, 2):
        try:
            frame = int(r["glance"])
        except (TypeError, ValueError):
            raise ValueError(f"{path.name} line {i}: glance {r['glance']!r} is not a frame index") from None
        if frame < 0:
            raise ValueError(f"{path.name} line {i}: glance frame {frame} is negative")
        out.setdefault(video_id(r["video-id"])[0], []).append(frame)
    return {k: np.sort(np.asarray(v, np.int64)) for k, v in out.items()}
