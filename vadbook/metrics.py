"""Evaluation: frame-level AUC / AP (both conventions), AUC_A / AP_A, FAR, per-class AUC.

WSVAD models score snippets of 16 frames; the benchmarks' ground truth is per frame. Every
metric here therefore works on *frame* arrays: :func:`snippets_to_frames` repeats each
snippet score 16 times (the convention of all reference code bases), and :func:`evaluate`
concatenates the frames of all test videos in list order, as the public ``gt-*.npy`` files do.

The temporal detection metric of fine-grained WSVAD (mAP@IoU) lives in
:mod:`vadbook.detection` and is re-exported here as :func:`detection_map`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from .data.video import FRAMES_PER_SNIPPET, Video
from .detection import Instance, detection_map, ground_truth_instances, temporal_iou

__all__ = ["snippets_to_frames", "frame_auc", "ap_stepwise", "ap_trapezoid", "far", "evaluate",
           "format_table", "detection_map", "Instance", "ground_truth_instances", "temporal_iou"]


def _to_numpy(x, what: str) -> np.ndarray:
    """A float64 numpy copy of a numpy array, torch tensor (any device) or sequence."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().float().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: cannot convert {type(x).__name__} to a float array ({err})") from None


def snippets_to_frames(scores, frames_per_snippet: int = FRAMES_PER_SNIPPET) -> np.ndarray:
    """Repeat each snippet score over the frames of its snippet.

    Args:
        scores: ``[T]`` snippet scores (numpy, torch or sequence).
        frames_per_snippet: frames per snippet (16 for the I3D / CLIP features of the benchmarks).

    Returns:
        ``[frames_per_snippet * T]`` float64 frame scores.
    """
    s = _to_numpy(scores, "snippets_to_frames")
    if s.ndim != 1:
        raise ValueError(f"snippets_to_frames: scores must be 1-D [T], got shape {s.shape}")
    if frames_per_snippet < 1:
        raise ValueError(f"snippets_to_frames: frames_per_snippet must be >= 1, got {frames_per_snippet}")
    return np.repeat(s, frames_per_snippet)


def _check_frames(frame_scores, frame_gt, metric: str, subset: str, need_both: bool = True):
    """Validate a (scores, gt) pair of frame arrays; return them as float64 numpy arrays."""
    s = _to_numpy(frame_scores, f"{metric} on {subset}")
    g = _to_numpy(frame_gt, f"{metric} on {subset}")
    if s.ndim != 1 or g.ndim != 1:
        raise ValueError(f"{metric} on {subset}: scores and ground truth must be 1-D, "
                         f"got shapes {s.shape} and {g.shape}")
    if s.size != g.size:
        raise ValueError(f"{metric} on {subset}: {s.size} frame scores but {g.size} ground-truth frames")
    if s.size == 0:
        raise ValueError(f"{metric} on {subset}: no frames to evaluate")
    if not np.isfinite(s).all():
        bad = np.flatnonzero(~np.isfinite(s))
        raise ValueError(f"{metric} on {subset}: {bad.size} of {s.size} frame scores are NaN or inf "
                         f"(first at frame {bad[0]})")
    if not np.isin(g, (0.0, 1.0)).all():
        raise ValueError(f"{metric} on {subset}: ground truth must be 0/1, got values "
                         f"{np.unique(g)[:5].tolist()}")
    if need_both:
        n_pos = int(g.sum())
        if n_pos == 0 or n_pos == g.size:
            kind = "normal (gt = 0)" if n_pos == 0 else "anomalous (gt = 1)"
            raise ValueError(f"{metric} on {subset}: needs both anomalous and normal frames, "
                             f"but all {g.size} frames are {kind}")
    return s, g


def frame_auc(frame_scores, frame_gt, subset: str = "the given frames") -> float:
    """Frame-level ROC AUC (the UCF-Crime headline metric).

    Args:
        frame_scores: ``[N]`` frame scores (numpy or torch).
        frame_gt: ``[N]`` 0/1 frame ground truth.
        subset: name of the frames, used only in error messages.

    Returns:
        ``sklearn.metrics.roc_auc_score(frame_gt, frame_scores)``.
    """
    s, g = _check_frames(frame_scores, frame_gt, "AUC", subset)
    return float(roc_auc_score(g, s))


def ap_stepwise(frame_scores, frame_gt, subset: str = "the given frames") -> float:
    """Frame-level average precision, step-wise: ``sum_n (R_n - R_{n-1}) P_n`` (VadCLIP).

    This is ``sklearn.metrics.average_precision_score``: precision is held constant (at its
    value on the right end) over each recall step, so no interpolation between operating
    points happens. VadCLIP and the fine-grained WSVAD papers that follow it report this AP.
    It differs from :func:`ap_trapezoid`, the convention of RTFM / UR-DMU / GlanceVAD; the
    two give different numbers for the same scores (see that function), so a table must
    never mix them.

    Args:
        frame_scores: ``[N]`` frame scores (numpy or torch).
        frame_gt: ``[N]`` 0/1 frame ground truth.
        subset: name of the frames, used only in error messages.
    """
    s, g = _check_frames(frame_scores, frame_gt, "AP", subset)
    return float(average_precision_score(g, s))


def ap_trapezoid(frame_scores, frame_gt, subset: str = "the given frames") -> float:
    """Frame-level average precision, trapezoid rule: ``auc(recall, precision)`` (RTFM, UR-DMU, GlanceVAD).

    The points are those of ``sklearn.metrics.precision_recall_curve`` (one per distinct
    score, plus the anchor recall 0 / precision 1), joined by straight lines. Linear
    interpolation in precision-recall space is not what a threshold between two points
    achieves, and it shifts the number both ways compared with :func:`ap_stepwise`:

    * distinct scores: between two points the step rule uses the (higher) right precision,
      the trapezoid the mean with the left one, which sits at the bottom of the saw-tooth
      after the false positives. Labels ``[1, 0, 1]`` ranked in that order give step-wise
      ``1/2 + 1/2 * 2/3 = 0.8333`` and trapezoid ``0.7917`` (1/24 lower);
    * ties: a constant score gives one point (recall 1, precision pi, the anomalous
      fraction); the step rule gives ``pi``, the trapezoid from the anchor ``(1 + pi) / 2``.

    Args:
        frame_scores: ``[N]`` frame scores (numpy or torch).
        frame_gt: ``[N]`` 0/1 frame ground truth.
        subset: name of the frames, used only in error messages.
    """
    s, g = _check_frames(frame_scores, frame_gt, "AP_trapz", subset)
    precision, recall, _ = precision_recall_curve(g, s)
    return float(auc(recall, precision))


def far(frame_scores_of_normal_videos, threshold: float = 0.5, subset: str = "normal videos") -> float:
    """False-alarm rate: fraction of the frames of *normal* videos with ``score >= threshold``.

    Every frame of a normal video is normal, so this is the false-positive rate of the
    detector run at a fixed operating point (0.5 for a sigmoid output). Reading chosen: an
    alarm is raised when the score reaches the threshold (``>=``). Frames and snippets give
    the same rate, since every snippet covers 16 frames.

    Args:
        frame_scores_of_normal_videos: ``[N]`` frame scores of normal videos (numpy or torch).
        threshold: operating point.
        subset: name of the frames, used only in error messages.
    """
    s = _to_numpy(frame_scores_of_normal_videos, f"FAR on {subset}")
    s, _ = _check_frames(s, np.zeros(s.shape), "FAR", subset, need_both=False)
    return float((s >= threshold).mean())


def _video_scores(scores, videos: Sequence[Video]) -> list[np.ndarray]:
    """Validate per-video snippet scores against the videos; return float64 numpy arrays."""
    if len(videos) == 0:
        raise ValueError("evaluate: no videos given")
    if len(scores) != len(videos):
        raise ValueError(f"evaluate: got {len(scores)} score arrays for {len(videos)} videos")
    out = []
    for s, v in zip(scores, videos):
        s = _to_numpy(s, f"video {v.name!r}")
        if s.ndim != 1:
            raise ValueError(f"video {v.name!r}: scores must be 1-D [T], got shape {s.shape}")
        if s.size != v.T:
            raise ValueError(f"video {v.name!r}: {s.size} snippet scores but the video has T = {v.T} "
                             "snippets (crop padded batch outputs to video.T)")
        if not np.isfinite(s).all():
            bad = np.flatnonzero(~np.isfinite(s))
            raise ValueError(f"video {v.name!r}: {bad.size} of {v.T} snippet scores are NaN or inf "
                             f"(first at snippet {bad[0]})")
        out.append(s)
    return out


def evaluate(scores, videos: Sequence[Video], classes: Sequence[str] | None = None,
             threshold: float = 0.5) -> dict:
    """All frame-level metrics of a test (or validation) split in one call.

    Snippet scores are repeated 16 times to frames and concatenated in list order with
    ``video.frame_gt``. Metrics and the frames they use:

    * ``AUC``, ``AP`` (step-wise, :func:`ap_stepwise`), ``AP_trapz`` (:func:`ap_trapezoid`):
      all videos;
    * ``AUC_A``, ``AP_A``, ``AP_A_trapz``: abnormal videos only (``label == 1``), the
      GS-MoE protocol: normal videos, easy to score low, no longer inflate the number;
    * ``FAR``: normal videos only, at ``threshold`` (:func:`far`);
    * ``per_class_AUC`` ``{class: AUC}``: frames of the abnormal videos of that class plus
      *all* normal videos. GS-MoE (Fig. 5, Table 4) reports category-wise AUC without
      defining it; this reading keeps the normal videos so that a class's number is
      comparable to ``AUC``;
    * ``per_class_AUC_A`` ``{class: AUC}``: frames of the abnormal videos of that class only.
      GS-MoE's Table 4 values (53-86 % while the overall AUC is 91.6 %) look like this
      reading, so both are reported.

    A multi-label video counts for each of its classes, with its binary ``gt`` (frames of
    its other classes' events count as anomalous too). A class with no test video, or whose
    subset lacks normal or anomalous frames, is left out of the per-class dicts.

    Args:
        scores: list of ``[T_i]`` snippet scores (numpy or torch), one per video.
        videos: the videos, same order.
        classes: class names for the per-class dicts (e.g. ``benchmark.classes``); default:
            the classes of the given videos in order of first appearance.
        threshold: FAR operating point.

    Returns:
        dict of floats ``AUC, AP, AP_trapz, AUC_A, AP_A, AP_A_trapz, FAR`` and the dicts
        ``per_class_AUC, per_class_AUC_A``.

    Raises:
        ValueError: lengths disagree (named video and both numbers), NaN / inf scores, no
            videos, no abnormal or no normal video, or a subset without positive or negative
            frames (named metric and subset).
    """
    per_video = _video_scores(scores, videos)
    # Repeating every snippet 16 times replicates each (score, label) pair uniformly, which
    # leaves ROC and PR curves, hence AUC, both APs and FAR, unchanged. So when the frame
    # ground truth is the snippet ground truth repeated (synthetic videos), work on snippets,
    # 16x cheaper; real videos with exact frame labels go through the frames.
    unit = 1 if all(type(v).frame_gt is Video.frame_gt for v in videos) else FRAMES_PER_SNIPPET
    if unit == 1:
        frame_scores = np.concatenate(per_video).astype(np.float64)
        frame_gt = np.concatenate([v.gt for v in videos]).astype(np.float64)
    else:
        frame_scores = np.concatenate([snippets_to_frames(s) for s in per_video])
        frame_gt = np.concatenate([v.frame_gt for v in videos]).astype(np.float64)
    owner = np.repeat(np.arange(len(videos)), [unit * v.T for v in videos])
    abnormal_video = np.array([int(v.label) == 1 for v in videos])
    if not abnormal_video.any():
        raise ValueError(f"evaluate: AUC_A / AP_A need abnormal videos, but all {len(videos)} videos are normal")
    if abnormal_video.all():
        raise ValueError(f"evaluate: FAR needs normal videos, but all {len(videos)} videos are abnormal")
    in_abnormal = abnormal_video[owner]
    in_normal = ~in_abnormal

    s_a, g_a = frame_scores[in_abnormal], frame_gt[in_abnormal]
    out = {
        "AUC": frame_auc(frame_scores, frame_gt, "all videos"),
        "AP": ap_stepwise(frame_scores, frame_gt, "all videos"),
        "AP_trapz": ap_trapezoid(frame_scores, frame_gt, "all videos"),
        "AUC_A": frame_auc(s_a, g_a, "abnormal videos"),
        "AP_A": ap_stepwise(s_a, g_a, "abnormal videos"),
        "AP_A_trapz": ap_trapezoid(s_a, g_a, "abnormal videos"),
        "FAR": far(frame_scores[in_normal], threshold),
    }

    if classes is None:
        classes = list(dict.fromkeys(c for v in videos for c in v.classes))
    per_class, per_class_a = {}, {}
    for c in classes:
        of_class = np.array([bool(v.label) and c in v.classes for v in videos])
        if not of_class.any():
            continue
        for target, keep in ((per_class, of_class[owner] | in_normal), (per_class_a, of_class[owner])):
            g = frame_gt[keep]
            if 0 < g.sum() < g.size:
                target[c] = frame_auc(frame_scores[keep], g, f"videos of class {c!r}")
    out["per_class_AUC"] = per_class
    out["per_class_AUC_A"] = per_class_a
    return out


def format_table(results: dict[str, dict], keys: Sequence[str] = ("AUC", "AUC_A", "AP", "AP_A", "FAR"),
                 percent: bool = True, digits: int = 2, first_column: str = "method") -> str:
    """A markdown table: one row per entry of ``results``, one column per key.

    Args:
        results: ``{row name: metrics dict}`` (e.g. ``{"MIL": evaluate(...), ...}``).
        keys: columns; a key missing from a row (or not a number) prints ``-``.
        percent: multiply by 100 (papers report metrics in %).
        digits: decimals.
        first_column: header of the row-name column.

    Returns:
        the table as a string (no pandas needed).
    """
    scale = 100.0 if percent else 1.0

    def cell(value) -> str:
        if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
            return f"{scale * float(value):.{digits}f}"
        return "-"

    lines = ["| " + " | ".join([first_column, *keys]) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(keys)) + "|"]
    for name, metrics in results.items():
        lines.append("| " + " | ".join([str(name), *(cell(metrics.get(k)) for k in keys)]) + " |")
    return "\n".join(lines)
