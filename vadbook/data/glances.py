"""Glance annotations of a benchmark: statistics, the public CSV, perturbation, label ratios.

A *glance* is one click inside an abnormal event (GlanceVAD Sec. 3): an annotator watches the
video, clicks once while an event is on and waits for it to end before the next click. The
synthetic benchmark draws its glances that way (one per event of an abnormal training video,
:mod:`vadbook.data.synthetic`) and stores them as snippet indices in ``Video.glances``.

The public files (GlanceVAD's ``ucf_glance_annotations.csv``) hold **absolute frame indices**,
one row ``video-id,glance`` per glance. Writing a synthetic glance at snippet ``s`` as frame
``16 s + offset`` (default ``offset = 8``, the middle frame of the snippet) and reading a frame
``f`` back as snippet ``f // 16`` (:func:`vadbook.data.gt.glance_snippets`) is a round trip.
Parsing is :func:`vadbook.data.annotations.read_glances`; the map to an L-segment grid is
:func:`vadbook.data.gt.glance_frame_to_grid` (GlanceVAD's rule, from the frame) or, for
snippet indices, :func:`vadbook.data.batching.glance_to_grid` (what training batches use).

The two ablations of GlanceVAD on the annotations themselves are here too: random temporal
perturbation of the clicks (Table 4) and mixing weakly- and glance-labelled abnormal videos
(Table 5).
"""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .annotations import read_glances
from .gt import glance_snippets
from .video import FRAMES_PER_SNIPPET as F
from .video import Video

__all__ = ["glance_frames", "write_glances", "read_glance_snippets", "with_glances", "glance_stats",
           "perturb_video_glances", "split_supervision"]


def glance_frames(video: Video, offset: int = 8) -> np.ndarray:
    """Absolute frame indices of a video's glances, ``[G]`` int64 (empty if none).

    The annotated frames where a real video carries them (``RealVideo.glance_frames``),
    otherwise ``16 s + offset`` for each glance snippet ``s``.
    """
    if not 0 <= offset < F:
        raise ValueError(f"offset must lie in [0, {F - 1}] (a frame inside the snippet), got {offset}")
    frames = getattr(video, "glance_frames", None)
    if frames is not None:
        return np.asarray(frames, np.int64)
    g = video.glances if video.glances is not None else np.zeros(0, np.int64)
    return np.asarray(g, np.int64) * F + offset


def _set_glances(video: Video, snippets, frames=None) -> Video:
    """A copy of ``video`` with new glance snippets (and frames, for videos that keep them)."""
    if snippets is not None:
        snippets = np.sort(np.asarray(snippets, np.int64))
    if hasattr(video, "glance_frames"):     # real videos: the batches map the frames, keep both in step
        frames = None if frames is None else np.sort(np.asarray(frames, np.int64))
        return replace(video, glances=snippets, glance_frames=frames)
    return replace(video, glances=snippets)


def write_glances(path: str | Path, videos: Sequence[Video], offset: int = 8) -> Path:
    """Write the glances of ``videos`` as a public-format CSV (``video-id,glance``, frames).

    One row per glance, videos in the given order, glances in increasing order; videos
    without glances get no row (as normal videos in the public files).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["video-id", "glance"])
        for v in videos:
            out.writerows([v.name, int(f)] for f in np.sort(glance_frames(v, offset)))
    return path


def read_glance_snippets(path: str | Path, videos: Sequence[Video]) -> dict[str, np.ndarray]:
    """Glance snippets ``frame // 16`` per video from a ``video-id,glance`` CSV.

    Args:
        path: the CSV.
        videos: the videos it annotates (for their lengths ``T``).

    Returns:
        ``{name: [G] int64 snippet indices}`` for the videos of ``videos`` that have a row.

    Raises:
        ValueError: a row names a video not in ``videos``, or a glance lies past a video's end
            (beyond the tolerance of :func:`vadbook.data.gt.glance_snippets`).
    """
    frames = read_glances(path)
    lengths = {v.name: v.T for v in videos}
    unknown = sorted(set(frames) - set(lengths))
    if unknown:
        raise ValueError(f"glance file {Path(path).name}: {len(unknown)} videos not in the given list, "
                         f"e.g. {unknown[:3]}")
    return {name: glance_snippets(name, f, lengths[name])[0] for name, f in frames.items()}


def with_glances(videos: Sequence[Video], snippets: dict[str, np.ndarray]) -> list[Video]:
    """Copies of ``videos`` whose glances are ``snippets[name]`` (``None`` for videos not in it).

    Real videos lose their annotated ``glance_frames``: the new snippets are all there is.
    """
    return [_set_glances(v, snippets.get(v.name)) for v in videos]


def glance_stats(videos: Sequence[Video]) -> dict:
    """Statistics of the glances of a training split, comparable with ``reference/dataset-stats.md``.

    Returns:
        Dict with ``abnormal`` (abnormal videos), ``with_glances`` (those with >= 1 glance),
        ``mean_per_video`` (over videos with glances), ``histogram`` ``{count: videos}``,
        ``gap_median_frames`` (consecutive glances of a video, in frames), ``position_quantiles``
        (p10, p50, p90 of ``glance / T``), ``inside_events`` (fraction of glances inside an
        annotated event).
    """
    abnormal = [v for v in videos if v.label == 1]
    annotated = [v for v in abnormal if v.glances is not None and len(v.glances)]
    if not annotated:
        raise ValueError(f"no glances among the {len(abnormal)} abnormal videos given")
    counts = np.array([len(v.glances) for v in annotated])
    values, freq = np.unique(counts, return_counts=True)
    g = np.concatenate([np.sort(v.glances) for v in annotated])
    T = np.repeat([v.T for v in annotated], counts)
    first = np.concatenate([[True] + [False] * (c - 1) for c in counts])
    gaps = np.diff(g)[~first[1:]] * F                       # gaps within a video, in frames
    gt = np.concatenate([v.gt for v in annotated])
    offsets = np.repeat(np.cumsum([0] + [v.T for v in annotated[:-1]]), counts)
    return {
        "abnormal": len(abnormal),
        "with_glances": len(annotated),
        "mean_per_video": float(counts.mean()),
        "histogram": {int(k): int(n) for k, n in zip(values, freq)},
        "gap_median_frames": float(np.median(gaps)) if gaps.size else float("nan"),
        "position_quantiles": tuple(float(q) for q in np.quantile((g + 0.5) / T, [0.1, 0.5, 0.9])),
        "inside_events": float(gt[offsets + g].mean()),
    }


def perturb_video_glances(videos: Sequence[Video], max_frames: int, seed: int = 0) -> list[Video]:
    """Move every glance by a random number of frames (GlanceVAD Table 4).

    Each glance frame (:func:`glance_frames`: the annotated frame of a real video, the frame
    ``16 s + 8`` of a synthetic glance at snippet ``s``) moves by an integer drawn uniformly from
    ``[-max_frames, max_frames]``, is clipped to the video's ``[0, 16 T - 1]`` frames and read
    back as a snippet ``frame // 16``. A glance may leave its event (that is the point). One draw
    per glance from ``numpy.random.default_rng(seed)``, in video order.

    Returns:
        Copies of ``videos`` (those without glances unchanged).
    """
    if max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    has = [v.glances is not None and len(v.glances) > 0 for v in videos]
    counts = np.array([len(v.glances) if h else 0 for v, h in zip(videos, has)])
    if counts.sum() == 0:
        return list(videos)
    frames = np.concatenate([glance_frames(v) for v, h in zip(videos, has) if h])
    last = np.repeat([F * v.T - 1 for v, h in zip(videos, has) if h], counts[counts > 0])
    shift = np.random.default_rng(seed).integers(-max_frames, max_frames + 1, frames.shape[0])
    moved = np.clip(frames + shift, 0, last)
    parts = iter(np.split(moved, np.cumsum(counts[counts > 0])[:-1]))
    out = []
    for v, h in zip(videos, has):
        f = next(parts) if h else None
        out.append(_set_glances(v, f // F, f) if h else v)
    return out


def split_supervision(videos: Sequence[Video], weak: float, glance: float, seed: int = 0) -> list[Video]:
    """Training videos with a share of abnormal videos weakly labelled and a share glance-labelled.

    GlanceVAD Table 5: of the abnormal training videos, a fraction ``glance`` keeps its glances,
    a fraction ``weak`` keeps only its video label (``glances=None``), and the rest is left out
    of training. Normal videos are all kept. The shares are drawn by one permutation from
    ``numpy.random.default_rng(seed)``; rounding goes to the glance share first.

    Args:
        videos: training videos (abnormal ones with glances).
        weak, glance: fractions in ``[0, 1]`` with ``weak + glance <= 1``.
        seed: permutation seed.

    Returns:
        The kept videos, in their original order.
    """
    if not (0 <= weak <= 1 and 0 <= glance <= 1 and weak + glance <= 1 + 1e-9):
        raise ValueError(f"need fractions weak, glance in [0, 1] with weak + glance <= 1, got {weak}, {glance}")
    abnormal = np.flatnonzero([v.label == 1 for v in videos])
    n = len(abnormal)
    n_glance = int(round(glance * n))
    n_weak = min(int(round(weak * n)), n - n_glance)
    if n_glance + n_weak == 0:
        raise ValueError(f"weak = {weak} and glance = {glance} leave none of the {n} abnormal videos")
    order = np.random.default_rng(seed).permutation(abnormal)
    role = {int(i): "glance" for i in order[:n_glance]}
    role.update({int(i): "weak" for i in order[n_glance:n_glance + n_weak]})
    out = []
    for i, v in enumerate(videos):
        if v.label == 0:
            out.append(v)
        elif role.get(i) == "glance":
            out.append(v)
        elif role.get(i) == "weak":
            out.append(_set_glances(v, None))
    return out
