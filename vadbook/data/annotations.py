"""Parsing the public UCF-Crime / XD-Violence list, annotation and glance files.

Pure functions from text (file names, annotation lines) to numbers; :mod:`vadbook.data.real`
puts them together. The conventions (all stated in ``reference/formats.md``):

* **Names.** A list entry is a path or an id; only its file name counts (foreign absolute
  paths, Windows ``\\`` or ``/``). :func:`video_id` strips the directory, ``.npy`` / ``.mp4``,
  the crop suffix ``__c`` and RTFM's ``_i3d``.
* **Labels from names.** UCF: ``Normal`` in the name means normal, otherwise the class is
  the prefix before the 3-digit index (``Abuse028_x264`` -> Abuse). XD: the ``-``-separated
  codes after ``_label_`` (``A`` normal, ``0`` pads; multi-label).
* **Frame ground truth.** A video with ``T`` feature snippets covers ``16 T`` frames (the tail
  frames after the last whole snippet are dropped). An interval ``(s, e)`` of an annotation
  file marks frames ``s .. e - 1`` (end **exclusive**, as ``gt[s:e] = 1`` in the public
  ``make_gt`` scripts, so the result equals the public ``gt-*.npy`` arrays frame for frame);
  ``end_inclusive=True`` reads ``e`` as the last anomalous frame instead.
* **Snippet ground truth.** A snippet is anomalous if **any** of its 16 frames is (so no
  event, however short, vanishes); an event ``[s, e)`` in frames covers snippets
  ``[s // 16, ceil(e / 16))``.
* **Past the end.** Events or glances up to ``overrun_frames`` (default 32) past ``16 T`` are
  clipped (with a warning): the dropped tail frames (< 16), the +-1 snippet by which ``T``
  differs from frames / 16, and the public quirk of events ending 1-2 frames after their
  video all land there. Further out is an error.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .video import FRAMES_PER_SNIPPET as F

UCF_CLASSES = ("Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting",
               "RoadAccidents", "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism")
XD_CLASSES = ("Fighting", "Shooting", "Riot", "Abuse", "CarAccident", "Explosion")
XD_CODES = {"B1": "Fighting", "B2": "Shooting", "B4": "Riot", "B5": "Abuse",
            "B6": "CarAccident", "G": "Explosion"}
OVERRUN_FRAMES = 32

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


def clip_intervals(name: str, intervals, T: int, end_inclusive: bool = False,
                   overrun_frames: int = OVERRUN_FRAMES) -> tuple[list[tuple[int, int]], int]:
    """Annotation intervals as half-open frame ranges inside the ``16 T`` feature frames.

    Returns:
        ``(ranges, overrun)``: ``[(s, e_exclusive), ...]`` clipped to ``16 T`` (intervals that
        start past ``16 T`` are dropped) and the largest number of frames clipped (0 if none).

    Raises:
        ValueError: an interval ending more than ``overrun_frames`` past ``16 T``.
    """
    n = F * T
    out, worst = [], 0
    for s, e in intervals:
        e_excl = e + 1 if end_inclusive else e
        if e_excl - n > overrun_frames:
            raise ValueError(f"video {name!r}: annotation ({s}, {e}) ends {e_excl - n} frames past the "
                             f"{n} frames covered by its T = {T} snippets (tolerance {overrun_frames}); "
                             "are the features and the annotation file from the same release?")
        worst = max(worst, e_excl - n)
        if s < n:
            out.append((s, min(e_excl, n)))
    return out, worst


def frame_labels(ranges, T: int) -> np.ndarray:
    """``[16 T]`` float32 frame ground truth from half-open frame ranges."""
    gt = np.zeros(F * T, np.float32)
    for s, e in ranges:
        gt[s:e] = 1.0
    return gt


def snippet_labels(frame_gt: np.ndarray) -> np.ndarray:
    """``[T]`` snippet ground truth from ``[16 T]`` frames: anomalous if any frame is."""
    return frame_gt.reshape(-1, F).max(axis=1).astype(np.float32)


def snippet_events(ranges, cls: str) -> list[tuple[int, int, str]]:
    """Half-open frame ranges -> ``[(start, end, class)]`` in snippets: ``[s // 16, ceil(e / 16))``."""
    return [(s // F, -(-e // F), cls) for s, e in ranges]


def events_from_snippets(gt: np.ndarray, cls: str) -> list[tuple[int, int, str]]:
    """Runs of 1 in a ``[T]`` snippet ground truth as ``[(start, end, class)]``."""
    d = np.diff(np.concatenate([[0], (gt > 0).astype(np.int8), [0]]))
    return [(int(s), int(e), cls) for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]


def glance_snippets(name: str, frames: np.ndarray, T: int,
                    overrun_frames: int = OVERRUN_FRAMES) -> tuple[np.ndarray, int]:
    """Glance frames -> snippet indices ``frame // 16`` on the full-length grid.

    Returns:
        ``(snippets [G] int64, overrun)``; glances in the ``overrun_frames`` after ``16 T`` are
        clipped to the last snippet, ``overrun`` is the largest such excess (0 if none).

    Raises:
        ValueError: a glance further past the end.
    """
    frames = np.asarray(frames, np.int64)
    over = frames - (F * T - 1)
    if frames.size and over.max() > overrun_frames:
        raise ValueError(f"video {name!r}: glance at frame {int(frames.max())} is past the {F * T} frames "
                         f"covered by its T = {T} snippets (tolerance {overrun_frames} frames)")
    worst = int(max(over.max(), 0)) if frames.size else 0
    return np.minimum(frames // F, T - 1), worst


def glance_frame_to_grid(frame, T: int, L: int) -> np.ndarray:
    """GlanceVAD's map of a glance *frame* to the L-segment training grid: ``int((frame / 16) / T * L)``.

    This is the rule of ``reference/formats.md``; it uses the frame, not the snippet index
    ``frame // 16``, so it can land one cell later than mapping the snippet. Results are
    clipped to ``L - 1`` (frames in the dropped tail).

    Args:
        frame: glance frame(s), scalar or ``[G]``.
        T: snippets of the video; L: grid length.

    Returns:
        ``[G]`` int64 grid indices.
    """
    if T < 1 or L < 1:
        raise ValueError(f"glance_frame_to_grid needs T >= 1 and L >= 1, got T={T}, L={L}")
    f = np.atleast_1d(np.asarray(frame, np.float64))
    if (f < 0).any():
        raise ValueError(f"glance frames must be >= 0, got {f[f < 0][:3].tolist()}")
    return np.minimum(((f / F) / T * L).astype(np.int64), L - 1)


def annotation_frame_gt(path: str | Path, names: Sequence[str], Ts: dict, labels: dict, dataset: str,
                        end_inclusive: bool = False, overrun_frames: int = OVERRUN_FRAMES,
                        clipped: list | None = None) -> dict[str, tuple[np.ndarray, list]]:
    """Frame ground truth of the test videos from a temporal annotation file.

    Args:
        path: ``Temporal_Anomaly_Annotation.txt`` (UCF) or ``annotations.txt`` (XD).
        names: test videos; Ts: ``{name: T}``; labels: ``{name: (label, classes)}``.
        dataset: ``"ucf"`` or ``"xd"``.
        end_inclusive, overrun_frames: see :func:`clip_intervals`.
        clipped: if given, ``(name, frames clipped)`` is appended for each clipped video.

    Returns:
        ``{name: (frame_gt [16 T], half-open frame ranges)}``.

    Raises:
        ValueError: an abnormal video without a line or without events, a normal video with
            events, or an event past the end (see :func:`clip_intervals`).
    """
    path = Path(path)
    ann = read_temporal_annotations(path, dataset)
    out = {}
    for n in names:
        label, ivs = labels[n][0], ann.get(n)
        if label and ivs is None:
            raise ValueError(f"abnormal test video {n!r} has no line in {path.name}")
        if label and not ivs:
            raise ValueError(f"abnormal test video {n!r} has no event in {path.name}")
        if not label and ivs:
            raise ValueError(f"normal test video {n!r} has events {ivs} in {path.name}")
        ranges, over = clip_intervals(n, ivs or [], Ts[n], end_inclusive, overrun_frames)
        if over > 0 and clipped is not None:
            clipped.append((n, over))
        out[n] = (frame_labels(ranges, Ts[n]), ranges)
    return out


def _check_binary(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{what}: frame ground truth must be 1-D, got shape {a.shape}")
    if not np.isin(a, (0, 1)).all():
        raise ValueError(f"{what}: frame ground truth must be 0/1, got values {np.unique(a)[:5].tolist()}")
    return a.astype(np.float32)


def array_frame_gt(source, names: Sequence[str], Ts: dict, labels: dict) -> dict[str, np.ndarray]:
    """Frame ground truth of the test videos from a public frame-level file.

    Args:
        source: a concatenated ``[sum 16 T]`` array in test-list order (``gt-ucf.npy``), or a
            dict ``{video_id: {"labels": [...]}}`` / ``{video_id: [...]}`` (GlanceVAD JSON).
            In a dict, a video may have up to 15 extra tail frames (its true frame count);
            they are dropped, as the features drop them.
        names, Ts, labels: test videos in list order, ``{name: T}``, ``{name: (label, classes)}``.

    Returns:
        ``{name: frame_gt [16 T]}``.

    Raises:
        ValueError: a length that does not match ``16 T`` (named video, or the totals and the
            first normal video holding anomalous frames for a concatenated array), values
            other than 0/1, or a missing video.
    """
    out = {}
    if isinstance(source, dict):
        per = {video_id(k)[0]: (v["labels"] if isinstance(v, dict) else v) for k, v in source.items()}
        for n in names:
            if n not in per:
                raise ValueError(f"test video {n!r} has no entry in the frame ground truth")
            g = _check_binary(per[n], f"video {n!r}")
            need = F * Ts[n]
            if not need <= g.size < need + F:
                raise ValueError(f"video {n!r}: ground truth has {g.size} frames but its T = {Ts[n]} snippets "
                                 f"cover {need} (accepted: {need}..{need + F - 1})")
            out[n] = g[:need]
        return out
    g = _check_binary(source, "concatenated frame ground truth")
    sizes = [F * Ts[n] for n in names]
    if g.size != sum(sizes):
        diff = g.size - sum(sizes)
        hint = (" (one snippet per video: was it built with (T + 1) * 16 frames?)" if abs(diff) == F * len(names)
                else " (different features, list or list order?)")
        raise ValueError(f"concatenated frame ground truth has {g.size} frames but the {len(names)} test "
                         f"videos cover 16 * sum(T) = {sum(sizes)} frames: {diff:+d} frames = "
                         f"{diff / F:+.2f} snippets{hint}")
    start = 0
    for i, (n, size) in enumerate(zip(names, sizes)):
        part = g[start:start + size]
        if not labels[n][0] and part.any():
            raise ValueError(f"normal test video {n!r} (list position {i}) gets {int(part.sum())} anomalous "
                             f"frames from gt[{start}:{start + size}]: the array is not aligned with the test "
                             "list (different order or per-video lengths)")
        out[n] = part
        start += size
    return out
