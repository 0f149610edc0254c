"""Diagnostics of where a detector's scores land relative to the annotated events.

Used by the MIL chapter to measure the two failure modes that motivate the later chapters:
weaker events that top-k supervision never selects, and long events that are only partly
detected. These are evaluation utilities over a list of videos (one record per event), not a
training path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data.video import Video
from .losses.mil import topk_mask


@dataclass
class EventRecord:
    """One annotated event and what the scores did with it."""

    video: str
    index: int              # position of the event in its video
    start: int
    end: int
    cls: str
    strength: float         # severity of the event (synthetic benchmark), nan if unknown
    strongest: bool         # the strongest event of its video
    in_topk: bool           # at least one of the video's top-k snippets falls inside it
    coverage: float         # fraction of its snippets scoring >= threshold
    mean_score: float
    edge_coverage: float    # coverage of its first and last quarter (onset and offset)
    core_coverage: float    # coverage of its middle half
    spill: float            # fraction of the quarter-length stretch after it scoring >= threshold

    @property
    def duration(self) -> int:
        return self.end - self.start


def event_records(scores: list[np.ndarray], videos: list[Video], threshold: float = 0.5,
                  k: int | None = None) -> list[EventRecord]:
    """One :class:`EventRecord` per event of the abnormal videos.

    Args:
        scores: ``[T]`` snippet scores per video (full length, as :func:`vadbook.train.predict`).
        videos: the videos, aligned with ``scores``.
        threshold: score at which a snippet counts as detected (coverage).
        k: top-k size; ``None`` uses the MIL rule ``floor(T/16) + 1`` per video.
    """
    if len(scores) != len(videos):
        raise ValueError(f"{len(scores)} score arrays for {len(videos)} videos")
    abn = [(np.asarray(s, np.float32), v) for s, v in zip(scores, videos) if v.label == 1]
    if not abn:
        return []
    T_max = max(v.T for _, v in abn)
    padded = torch.zeros(len(abn), T_max)
    mask = torch.zeros(len(abn), T_max, dtype=torch.bool)
    for i, (s, v) in enumerate(abn):
        if s.shape != (v.T,):
            raise ValueError(f"video {v.name!r}: {s.shape[0]} scores for T={v.T} snippets")
        padded[i, : v.T] = torch.from_numpy(s)
        mask[i, : v.T] = True
    top = topk_mask(padded, mask, k).numpy()          # [B, T_max] batched top-k selection
    records = []
    for i, (s, v) in enumerate(abn):
        strengths = v.strengths or (float("nan"),) * len(v.events)
        best = int(np.nanargmax(strengths)) if not np.isnan(strengths).all() else -1
        hit = s >= threshold
        for j, (a, b, c) in enumerate(v.events):
            q = max(1, (b - a) // 4)
            edges = np.concatenate([hit[a:a + q], hit[b - q:b]])
            core = hit[a + q:b - q] if b - a > 2 * q else edges
            after = hit[b:b + q]
            records.append(EventRecord(
                v.name, j, a, b, c, float(strengths[j]), j == best,
                bool(top[i, a:b].any()), float(hit[a:b].mean()), float(s[a:b].mean()),
                float(edges.mean()), float(core.mean()), float(after.mean()) if after.size else float("nan")))
    return records


def weaker_event_summary(records: list[EventRecord]) -> dict[str, float]:
    """Top-k hit rates of the strongest vs the other events, in videos with several events."""
    multi = {r.video for r in records if r.index > 0}
    strong = [r.in_topk for r in records if r.video in multi and r.strongest]
    weak = [r.in_topk for r in records if r.video in multi and not r.strongest]
    return {"videos": len(multi), "strongest_in_topk": float(np.mean(strong)) if strong else float("nan"),
            "weaker_in_topk": float(np.mean(weak)) if weak else float("nan"),
            "weaker_events": len(weak)}


def coverage_by_duration(records: list[EventRecord], long_from: int = 20) -> dict[str, float]:
    """Mean coverage of short (< ``long_from`` snippets) vs long events, and for long events
    the coverage of their edges (first and last quarter) and core, and the spill after them."""
    short = [r for r in records if r.duration < long_from]
    long = [r for r in records if r.duration >= long_from]

    def mean(rows, field):
        vals = [getattr(r, field) for r in rows if not np.isnan(getattr(r, field))]
        return float(np.mean(vals)) if vals else float("nan")

    return {"short_events": len(short), "long_events": len(long),
            "short_coverage": mean(short, "coverage"), "long_coverage": mean(long, "coverage"),
            "long_edge_coverage": mean(long, "edge_coverage"),
            "long_core_coverage": mean(long, "core_coverage"), "long_spill": mean(long, "spill")}
