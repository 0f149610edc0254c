"""Temporal detection mAP@IoU, the fine-grained WSVAD metric (VadCLIP, LEC-VAD).

Fine-grained WSVAD predicts anomaly *instances*: (video, start, end, class, score). LEC-VAD
(Sec. 4.1, "Evaluation Protocol") follows VadCLIP and reports the mean over classes of the
average precision at temporal IoU 0.1, 0.2, 0.3, 0.4, 0.5, and the average of these five
(``AVG``). :func:`detection_map` computes it; :func:`ground_truth_instances` turns the
``events`` of :class:`vadbook.data.Video` into ground-truth instances.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

__all__ = ["Instance", "temporal_iou", "detection_map", "ground_truth_instances"]


@dataclass(frozen=True)
class Instance:
    """One temporal instance: a prediction (with ``score``) or a ground-truth event.

    ``start`` / ``end`` are in any unit shared by predictions and ground truth (the book uses
    snippets, as in ``Video.events``); ``end`` is exclusive, so the length is ``end - start``.
    """

    video: Hashable
    start: float
    end: float
    class_name: str
    score: float = 1.0


def ground_truth_instances(videos) -> list[Instance]:
    """Ground-truth instances ``(video.name, start, end, class)`` from ``video.events`` (snippets)."""
    return [Instance(v.name, float(s), float(e), c) for v in videos for s, e, c in v.events]


def _as_instances(items: Iterable, what: str, with_score: bool) -> list[Instance]:
    """Instances from Instance objects or tuples (video, start, end, class[, score])."""
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Instance):
            item = tuple(item)
            if len(item) not in ((5,) if with_score else (4, 5)):
                want = "(video, start, end, class, score)" if with_score else "(video, start, end, class)"
                raise ValueError(f"detection_map: {what}[{i}] has {len(item)} fields, expected {want}")
            item = Instance(item[0], float(item[1]), float(item[2]), item[3],
                            float(item[4]) if len(item) == 5 else 1.0)
        if not (np.isfinite(item.start) and np.isfinite(item.end) and np.isfinite(item.score)):
            raise ValueError(f"detection_map: {what}[{i}] = {item} has a NaN or inf field")
        if not item.end > item.start:
            raise ValueError(f"detection_map: {what}[{i}] in video {item.video!r} has end {item.end} "
                             f"<= start {item.start}")
        out.append(item)
    return out


def temporal_iou(segments_a: np.ndarray, segments_b: np.ndarray) -> np.ndarray:
    """Pairwise temporal IoU of ``[start, end)`` segments.

    Args:
        segments_a: ``[P, 2]`` (start, end) with end > start.
        segments_b: ``[G, 2]``.

    Returns:
        ``[P, G]`` IoU = overlap / (len_a + len_b - overlap). For integer bounds this equals
        VadCLIP's IoU of the integer index sets ``range(start, end)``.
    """
    a = np.asarray(segments_a, np.float64).reshape(-1, 2)
    b = np.asarray(segments_b, np.float64).reshape(-1, 2)
    overlap = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]),
                      0.0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - overlap
    return overlap / union


def _greedy_true_positives(pred: list[Instance], gt: list[Instance], thresholds: np.ndarray) -> np.ndarray:
    """``[K, P]`` bool: is prediction p (sorted by descending score) a true positive at IoU threshold k.

    Each prediction, in score order, takes the still unmatched ground truth of its video with
    the highest IoU among those with ``IoU >= threshold`` (ties: the first listed); each
    ground truth is matched at most once, so duplicates become false positives. All
    thresholds are matched at once; the loop over predictions is inherent to greedy
    matching (a match depends on the earlier ones).
    """
    K, P, G = len(thresholds), len(pred), len(gt)
    tp = np.zeros((K, P), bool)
    if P == 0 or G == 0:
        return tp
    videos = {v: i for i, v in enumerate(dict.fromkeys([g.video for g in gt] + [p.video for p in pred]))}
    iou = temporal_iou([(p.start, p.end) for p in pred], [(g.start, g.end) for g in gt])
    same_video = np.array([videos[p.video] for p in pred])[:, None] == np.array([videos[g.video] for g in gt])
    iou = np.where(same_video, iou, -np.inf)
    matched = np.zeros((K, G), bool)
    rows = np.arange(K)
    for p in range(P):
        candidate = np.where((iou[p] >= thresholds[:, None]) & ~matched, iou[p], -np.inf)  # [K, G]
        best = candidate.argmax(axis=1)
        hit = np.isfinite(candidate[rows, best])
        tp[hit, p] = True
        matched[rows[hit], best[hit]] = True
    return tp


def _average_precision(tp: np.ndarray, n_gt: int, mode: str) -> np.ndarray:
    """``[K]`` AP from ``[K, P]`` true-positive flags in score order and the number of ground truths."""
    K, P = tp.shape
    if P == 0:
        return np.zeros(K)
    hits = np.cumsum(tp, axis=1)
    precision = hits / np.arange(1, P + 1)
    if mode == "vadclip":
        # Non-interpolated: mean over ground truths of the precision at the rank where each is found.
        return (precision * tp).sum(axis=1) / n_gt
    # All-point interpolated (ActivityNet / VOC 2010+): precision envelope times recall steps.
    recall = hits / n_gt
    envelope = np.flip(np.maximum.accumulate(np.flip(precision, axis=1), axis=1), axis=1)
    recall_step = np.diff(recall, axis=1, prepend=0.0)
    return (envelope * recall_step).sum(axis=1)


def detection_map(predictions: Sequence, ground_truth: Sequence,
                  iou_thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
                  classes: Sequence[str] | None = None, ap_mode: str = "vadclip") -> dict:
    """Class-aware temporal detection mAP at several IoU thresholds (VadCLIP / LEC-VAD protocol).

    For each class, the predictions of that class are sorted by descending score (stable:
    ties keep input order) and matched greedily to the ground truth of that class (see
    ``_greedy_true_positives``: same video, ``IoU >= threshold``, highest IoU, each ground
    truth once). Per-class AP at each threshold, then the mean over classes (``mAP@t``) and
    the mean of those over thresholds (``AVG``).

    Readings chosen. LEC-VAD says only that it follows VadCLIP (and ITC). VadCLIP's code
    computes a *non-interpolated* AP, ``sum over true positives of precision@rank / #GT``
    (``ap_mode="vadclip"``, the default). ActivityNet's evaluation interpolates the
    precision envelope (``ap_mode="interpolated"``); the two agree when precision only
    falls with rank and differ by a few points otherwise. Not reproduced from VadCLIP's code:
    a "Normal" pseudo-class in the class mean (always 0 on UCF-Crime there), and returning 0
    for the whole mAP when one class has no prediction; here a class without predictions has
    AP 0 and only anomaly classes are averaged. A class without any ground-truth instance
    has no defined AP and is left out of the mean; ``classes`` in the result lists the
    classes averaged.

    Args:
        predictions: :class:`Instance` objects or tuples ``(video, start, end, class, score)``.
        ground_truth: :class:`Instance` objects or tuples ``(video, start, end, class)``.
        iou_thresholds: thresholds in (0, 1].
        classes: classes to average over; default: those in ``ground_truth`` (first-appearance
            order). Predictions and ground truth of other classes are ignored.
        ap_mode: ``"vadclip"`` (default) or ``"interpolated"``.

    Returns:
        ``{"mAP@0.1": float, ..., "AVG": float, "per_class_AP": {class: [AP per threshold]},
        "iou_thresholds": tuple, "classes": tuple of the classes averaged}``.

    Raises:
        ValueError: malformed instances (named index), no ground truth for any requested
            class, thresholds outside (0, 1], unknown ``ap_mode``.
    """
    if ap_mode not in ("vadclip", "interpolated"):
        raise ValueError(f"detection_map: ap_mode must be 'vadclip' or 'interpolated', got {ap_mode!r}")
    thresholds = np.asarray(iou_thresholds, np.float64).reshape(-1)
    if thresholds.size == 0 or not ((thresholds > 0) & (thresholds <= 1)).all():
        raise ValueError("detection_map: IoU thresholds must be a non-empty list in (0, 1], "
                         f"got {list(iou_thresholds)}")
    pred = _as_instances(predictions, "predictions", with_score=True)
    gt = _as_instances(ground_truth, "ground_truth", with_score=False)
    if not gt:
        raise ValueError("detection_map: ground truth is empty; "
                         "AP is undefined without ground-truth instances")
    requested = list(dict.fromkeys(g.class_name for g in gt)) if classes is None else list(classes)
    evaluated = [c for c in requested if any(g.class_name == c for g in gt)]
    if not evaluated:
        raise ValueError(f"detection_map: none of the classes {requested} has a ground-truth instance")

    per_class = {}
    for c in evaluated:
        pred_c = sorted((p for p in pred if p.class_name == c), key=lambda p: -p.score)
        gt_c = [g for g in gt if g.class_name == c]
        tp = _greedy_true_positives(pred_c, gt_c, thresholds)
        per_class[c] = _average_precision(tp, len(gt_c), ap_mode)

    ap = np.stack(list(per_class.values()))  # [C, K]
    out = {f"mAP@{t:g}": float(m) for t, m in zip(thresholds, ap.mean(axis=0))}
    out["AVG"] = float(ap.mean())
    out["per_class_AP"] = {c: [float(x) for x in v] for c, v in per_class.items()}
    out["iou_thresholds"] = tuple(float(t) for t in thresholds)
    out["classes"] = tuple(evaluated)
    return out
