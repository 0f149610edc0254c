"""Fine-grained WSVAD inference: class-wise anomaly instances from snippet class scores (LEC-VAD Sec. 3.4).

Given per-snippet class scores ``s^m`` ``[B, T, C + 1]`` (column 0 = normal) and video-level
class probabilities ``p^m`` ``[B, C + 1]``, LEC-VAD builds instances in four steps:

1. keep the classes ``c >= 1`` of a video with ``p^m_c > r_cls`` (0.1);
2. for each kept class, the snippets with ``s^m[t, c] > r_ano`` (0.2) are candidates;
3. runs of consecutive candidates are merged into instances ``[start, end)``;
4. each instance's confidence is AutoLoc's outer-inner contrast on ``s^m[:, c]``, and a
   class-wise non-maximum suppression at IoU 0.5 removes duplicates within a video.

Steps 1-3 and the confidences are vectorised over videos, classes and instances (runs are
found from one ``diff`` of the candidate mask, means from cumulative sums). NMS is greedy:
whether an instance survives depends on the instances kept before it, so its loop over
instances (within each video and class) is inherent.

Outer-inner contrast (AutoLoc, as in the W-TALC / ACM-Net code that VadCLIP-style
evaluations use): for an instance of length ``l`` the outer region is
``[max(0, floor(s - 0.25 l)), s)`` and ``[e, min(T, floor(e - 1 + 0.25 l) + 1))``;
confidence = mean inside - mean of the outer region (0 if the region is empty).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .metrics import Instance, temporal_iou

__all__ = ["candidate_runs", "outer_inner_contrast", "nms_keep", "instances_from_scores", "predict_instances",
           "event_fragmentation"]


def candidate_runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of True in each row of ``[N, T]`` bool: ``(row, start, end_exclusive)``, each ``[R]``."""
    a = np.asarray(active, bool)
    if a.ndim != 2:
        raise ValueError(f"active must be [N, T], got shape {a.shape}")
    N = a.shape[0]
    edges = np.diff(np.concatenate([np.zeros((N, 1), np.int8), a.astype(np.int8), np.zeros((N, 1), np.int8)], 1), axis=1)
    row_s, start = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)   # same row-major order: the k-th end closes the k-th start
    return row_s, start, end


def outer_inner_contrast(cas: np.ndarray, lengths: np.ndarray, row: np.ndarray, start: np.ndarray,
                         end: np.ndarray, inflation: float = 0.25) -> np.ndarray:
    """AutoLoc's outer-inner contrast of each instance, ``[R]``.

    Args:
        cas: ``[N, T]`` class activation sequences (one row per video and class).
        lengths: ``[N]`` valid lengths; the outer region never passes them.
        row, start, end: instances ``[R]`` (``end`` exclusive).
        inflation: outer region length as a fraction of the instance length.
    """
    cas = np.asarray(cas, np.float64)
    cs = np.concatenate([np.zeros((cas.shape[0], 1)), np.cumsum(cas, axis=1)], axis=1)
    length = end - start
    o_start = np.maximum(0, np.floor(start - inflation * length)).astype(int)
    o_end = np.minimum(lengths[row], np.floor(end - 1 + inflation * length).astype(int) + 1)
    inner = (cs[row, end] - cs[row, start]) / length
    o_sum = (cs[row, start] - cs[row, o_start]) + (cs[row, o_end] - cs[row, end])
    o_count = (start - o_start) + (o_end - end)
    outer = np.where(o_count > 0, o_sum / np.maximum(o_count, 1), 0.0)
    return inner - outer


def nms_keep(start: np.ndarray, end: np.ndarray, score: np.ndarray, group: np.ndarray,
             iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy temporal NMS within groups: indices kept, in descending score order.

    An instance is dropped when a kept instance of the same group (video and class) with a
    higher score (ties: the earlier index) overlaps it with IoU > ``iou_threshold``.
    """
    order = np.lexsort((np.arange(len(score)), -np.asarray(score)))
    keep = []
    group = np.asarray(group)
    for g in np.unique(group[order]) if len(order) else []:
        idx = order[group[order] == g]
        iou = temporal_iou(np.stack([start[idx], end[idx]], 1), np.stack([start[idx], end[idx]], 1))
        alive = np.ones(len(idx), bool)
        for i in range(len(idx)):   # greedy: depends on what was kept before
            if alive[i]:
                keep.append(idx[i])
                alive[i + 1:] &= ~(iou[i, i + 1:] > iou_threshold)
    keep = np.asarray(keep, int)
    return keep[np.lexsort((keep, -np.asarray(score)[keep]))] if len(keep) else keep


def instances_from_scores(s_m: np.ndarray, p_m: np.ndarray, lengths: Sequence[int], names: Sequence,
                          classes: Sequence[str], r_cls: float = 0.1, r_ano: float = 0.2,
                          nms_iou: float = 0.5, inflation: float = 0.25) -> list[Instance]:
    """LEC-VAD Sec. 3.4 on a padded batch.

    Args:
        s_m: ``[B, T, C + 1]`` snippet class scores, column 0 normal.
        p_m: ``[B, C + 1]`` video-level class probabilities.
        lengths: valid length of each video; names: video ids; classes: the ``C`` anomaly
            class names (column ``c`` of ``s_m`` is ``classes[c - 1]``).
        r_cls, r_ano, nms_iou, inflation: thresholds of the method.

    Returns:
        :class:`vadbook.metrics.Instance` list in snippets, sorted by descending score.
    """
    s_m, p_m = np.asarray(s_m, np.float64), np.asarray(p_m, np.float64)
    B, T, C1 = s_m.shape
    if p_m.shape != (B, C1) or len(classes) != C1 - 1 or len(lengths) != B or len(names) != B:
        raise ValueError(f"instances_from_scores: s_m {s_m.shape}, p_m {p_m.shape}, {len(classes)} classes, "
                         f"{len(lengths)} lengths, {len(names)} names do not agree (need C + 1 = {C1} columns)")
    lengths = np.asarray(lengths, int)
    valid = np.arange(T)[None, :] < lengths[:, None]                                   # [B, T]
    cas = s_m[..., 1:].transpose(0, 2, 1).reshape(B * (C1 - 1), T)                     # row = b * C + c
    kept_class = (p_m[:, 1:] > r_cls).reshape(-1)
    active = (cas > r_ano) & np.repeat(valid, C1 - 1, axis=0) & kept_class[:, None]
    row, start, end = candidate_runs(active)
    if len(row) == 0:
        return []
    conf = outer_inner_contrast(cas, np.repeat(lengths, C1 - 1), row, start, end, inflation)
    keep = nms_keep(start, end, conf, row, nms_iou)
    b, c = row[keep] // (C1 - 1), row[keep] % (C1 - 1)
    return [Instance(names[bi], float(s), float(e), classes[ci], float(sc))
            for bi, ci, s, e, sc in zip(b, c, start[keep], end[keep], conf[keep])]


@torch.no_grad()
def predict_instances(model: torch.nn.Module, videos, classes: Sequence[str], batch_size: int = 32,
                      **kwargs) -> list[Instance]:
    """Run a LEC-VAD-style model (outputs ``s_m`` and ``p_m``) on full-length videos; return instances.

    ``kwargs`` go to :func:`instances_from_scores` (``r_cls``, ``r_ano``, ``nms_iou``).
    """
    from .data.batching import pad_batch

    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[Instance] = []
    for s in range(0, len(videos), batch_size):
        chunk = videos[s:s + batch_size]
        x, mask = pad_batch(chunk, dev)
        o = model(x, mask)
        out += instances_from_scores(o["s_m"].float().cpu().numpy(), o["p_m"].float().cpu().numpy(),
                                     [v.T for v in chunk], [v.name for v in chunk], classes, **kwargs)
    model.train(was_training)
    return sorted(out, key=lambda i: -i.score)


def event_fragmentation(videos, segments: dict, iou: float = 0.5) -> dict[str, float]:
    """How completely predicted segments cover the ground-truth events.

    Args:
        videos: videos with ``events`` (snippets, end exclusive).
        segments: ``{video name: [(start, end), ...]}`` predicted segments (e.g. runs of a
            thresholded score, or the instances of the event's class).
        iou: threshold of ``hit_rate``.

    Returns:
        ``fragments``: mean number of segments overlapping an event (1 = one piece per event);
        ``best_iou``: mean over events of the best segment IoU; ``hit_rate``: fraction of
        events with a segment of IoU >= ``iou``; ``events``: how many events were counted.
    """
    frags, best = [], []
    for v in videos:
        segs = np.asarray(segments.get(v.name, []), np.float64).reshape(-1, 2)
        for s, e, _ in v.events:
            if len(segs) == 0:
                frags.append(0)
                best.append(0.0)
                continue
            ov = np.minimum(segs[:, 1], e) - np.maximum(segs[:, 0], s)
            frags.append(int((ov > 0).sum()))
            best.append(float(temporal_iou(segs, [[s, e]]).max()))
    if not frags:
        raise ValueError("event_fragmentation: the videos have no events")
    best = np.asarray(best)
    return {"fragments": float(np.mean(frags)), "best_iou": float(best.mean()),
            "hit_rate": float((best >= iou).mean()), "events": len(frags)}
