"""Ground truth of real test videos: frame labels, snippet labels, events, glances.

The rules that turn the public annotation files (parsed by :mod:`vadbook.data.annotations`)
or the public frame-level arrays into the labels of a :class:`~vadbook.data.video.Video`.
All stated in ``reference/formats.md``:

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
* **Frame arrays.** A concatenated array (``gt-ucf.npy``) must hold exactly ``16 T`` frames
  per test video in list order; a per-video dict (GlanceVAD JSON) may carry each video's true
  frame count (up to 15 extra tail frames, dropped).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .annotations import read_temporal_annotations, video_id
from .video import FRAMES_PER_SNIPPET as F

__all__ = ["OVERRUN_FRAMES", "clip_intervals", "frame_labels", "snippet_labels", "snippet_events",
           "events_from_snippets", "glance_snippets", "glance_frame_to_grid", "annotation_frame_gt",
           "array_frame_gt"]

OVERRUN_FRAMES = 32


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
