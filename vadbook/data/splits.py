"""Validation splits and crop merging for real-feature benchmarks.

:func:`stratified_split` holds out a class-stratified, seeded part of a list (the releases
have no validation split); :func:`merge_crops` averages per-crop scores into one score per
video, the reference test protocol.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

__all__ = ["stratified_split", "merge_crops"]


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


def merge_crops(scores: Sequence, videos: Sequence) -> tuple[list[np.ndarray], list]:
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
