"""Tests for vadbook.metrics and vadbook.detection: sklearn references, hand cases, naive oracles."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from vadbook.data import Video
from vadbook.metrics import (Instance, ap_stepwise, ap_trapezoid, detection_map, evaluate, far,
                             format_table, frame_auc, ground_truth_instances, snippets_to_frames,
                             temporal_iou)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


def make_video(name, gt, classes=(), d=2):
    gt = np.asarray(gt, np.float32)
    return Video(name, np.zeros((gt.size, d), np.float32), int(bool(classes)), tuple(classes), gt)


def random_split(rng, n_normal=6, n_abnormal=8, classes=("A", "B", "C")):
    videos, scores = [], []
    for i in range(n_normal):
        T = int(rng.integers(3, 12))
        videos.append(make_video(f"n{i}", np.zeros(T)))
    for i in range(n_abnormal):
        T = int(rng.integers(4, 12))
        gt = np.zeros(T)
        s = int(rng.integers(0, T - 2))
        gt[s:s + int(rng.integers(1, T - s))] = 1
        cls = (classes[i % len(classes)],) + ((classes[(i + 1) % len(classes)],) if i == 7 else ())
        videos.append(make_video(f"a{i}", gt, cls))
    for v in videos:
        scores.append(np.clip(0.4 * v.gt + rng.random(v.T) * 0.8, 0, 1))
    return videos, scores


# ---------------------------------------------------------------- frame-level metrics

def test_snippets_to_frames_numpy_and_torch():
    s = np.array([0.1, 0.7])
    f = snippets_to_frames(s)
    assert f.shape == (32,) and (f[:16] == 0.1).all() and (f[16:] == 0.7).all()
    assert np.allclose(snippets_to_frames(torch.tensor(s)), f)
    assert snippets_to_frames(s, 4).shape == (8,)
    with pytest.raises(ValueError, match=r"1-D \[T\], got shape \(2, 1\)"):
        snippets_to_frames(s[:, None])


def test_metrics_match_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(5):
        g = (rng.random(500) < 0.3).astype(float)
        s = rng.random(500) + 0.3 * g
        s[:50] = np.round(s[:50], 1)  # some ties
        assert frame_auc(s, g) == pytest.approx(roc_auc_score(g, s))
        assert ap_stepwise(s, g) == pytest.approx(average_precision_score(g, s))
        p, r, _ = precision_recall_curve(g, s)
        assert ap_trapezoid(s, g) == pytest.approx(auc(r, p))
        assert frame_auc(torch.tensor(s), torch.tensor(g)) == pytest.approx(roc_auc_score(g, s))


def test_perfect_scores():
    g = np.array([0, 0, 1, 1, 0, 1.0])
    s = 0.1 + 0.8 * g
    assert frame_auc(s, g) == 1.0 and ap_stepwise(s, g) == 1.0 and ap_trapezoid(s, g) == 1.0


def test_stepwise_vs_trapezoid_by_hand():
    # Ranked labels 1, 0, 1: points (R, P) = (1/2, 1), (1/2, 1/2), (1, 2/3).
    g, s = np.array([1, 0, 1.0]), np.array([0.9, 0.8, 0.7])
    step = 0.5 * 1 + 0.5 * (2 / 3)                 # precision at the right end of each recall step
    trapz = 0.5 * 1 + 0 + 0.5 * (0.5 + 2 / 3) / 2  # (0,1)-(1/2,1), vertical drop, line to (1, 2/3)
    assert ap_stepwise(s, g) == pytest.approx(step) == pytest.approx(5 / 6)
    assert ap_trapezoid(s, g) == pytest.approx(trapz) == pytest.approx(19 / 24)
    assert ap_stepwise(s, g) - ap_trapezoid(s, g) == pytest.approx(1 / 24)
    # Constant score (all tied): one point (R=1, P=pi); step gives pi, trapezoid (1 + pi) / 2.
    g2 = np.array([1, 0, 0, 0.0])
    assert ap_stepwise(np.full(4, 0.5), g2) == pytest.approx(0.25)
    assert ap_trapezoid(np.full(4, 0.5), g2) == pytest.approx(0.625)


def test_far_hand_case():
    s = np.array([0.1, 0.5, 0.7, 0.2, 0.49])
    assert far(s) == pytest.approx(2 / 5)  # 0.5 counts (>=)
    assert far(s, threshold=0.6) == pytest.approx(1 / 5)
    assert far(torch.tensor(s)) == pytest.approx(2 / 5)


def test_frame_metric_bad_input():
    with pytest.raises(ValueError, match="AUC on the given frames: 3 frame scores but 2 ground-truth frames"):
        frame_auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="AP on the given frames: no frames"):
        ap_stepwise([], [])
    with pytest.raises(ValueError, match=r"AP_trapz on the given frames: 1 of 3 frame scores are NaN or inf \(first at frame 1\)"):
        ap_trapezoid([0.1, np.nan, 0.3], [0, 1, 0])
    with pytest.raises(ValueError, match="AUC on the given frames: needs both .* all 3 frames are normal"):
        frame_auc([0.1, 0.2, 0.3], [0, 0, 0])
    with pytest.raises(ValueError, match="AP on the given frames: needs both .* all 2 frames are anomalous"):
        ap_stepwise([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="ground truth must be 0/1"):
        frame_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="FAR on normal videos: no frames"):
        far([])
    with pytest.raises(ValueError, match=r"FAR on normal videos: 1 of 2 frame scores are NaN or inf"):
        far([0.1, np.inf])


# ---------------------------------------------------------------- evaluate

def test_evaluate_matches_direct_sklearn():
    rng = np.random.default_rng(1)
    videos, scores = random_split(rng)
    res = evaluate([torch.tensor(s) for s in scores], videos)
    fs = np.concatenate([np.repeat(s, 16) for s in scores])
    fg = np.concatenate([v.frame_gt for v in videos])
    ab = np.concatenate([np.full(16 * v.T, v.label == 1) for v in videos])
    assert res["AUC"] == pytest.approx(roc_auc_score(fg, fs))
    assert res["AP"] == pytest.approx(average_precision_score(fg, fs))
    p, r, _ = precision_recall_curve(fg, fs)
    assert res["AP_trapz"] == pytest.approx(auc(r, p))
    assert res["AUC_A"] == pytest.approx(roc_auc_score(fg[ab], fs[ab]))
    assert res["AP_A"] == pytest.approx(average_precision_score(fg[ab], fs[ab]))
    p, r, _ = precision_recall_curve(fg[ab], fs[ab])
    assert res["AP_A_trapz"] == pytest.approx(auc(r, p))
    assert res["FAR"] == pytest.approx((fs[~ab] >= 0.5).mean())
    assert evaluate(scores, videos)["AUC"] == pytest.approx(res["AUC"])  # numpy input too


def test_auc_a_ignores_normal_videos():
    rng = np.random.default_rng(2)
    videos, scores = random_split(rng)
    base = evaluate(scores, videos)
    changed = [s if v.label else rng.random(v.T) for s, v in zip(scores, videos)]
    other = evaluate(changed, videos)
    for k in ("AUC_A", "AP_A", "AP_A_trapz"):
        assert other[k] == pytest.approx(base[k])
    assert other["AUC"] != pytest.approx(base["AUC"])


def test_per_class_auc_subsets():
    rng = np.random.default_rng(3)
    videos, scores = random_split(rng)
    res = evaluate(scores, videos, classes=("A", "B", "C", "D"))
    assert set(res["per_class_AUC"]) == {"A", "B", "C"}  # D has no test video: omitted
    for c in "ABC":
        keep = [i for i, v in enumerate(videos) if v.label == 0 or c in v.classes]
        fs = np.concatenate([np.repeat(scores[i], 16) for i in keep])
        fg = np.concatenate([videos[i].frame_gt for i in keep])
        assert res["per_class_AUC"][c] == pytest.approx(roc_auc_score(fg, fs))
        keep_a = [i for i in keep if videos[i].label == 1]
        fs = np.concatenate([np.repeat(scores[i], 16) for i in keep_a])
        fg = np.concatenate([videos[i].frame_gt for i in keep_a])
        if 0 < fg.sum() < fg.size:
            assert res["per_class_AUC_A"][c] == pytest.approx(roc_auc_score(fg, fs))
    # video a7 is multi-label (B, C): it must be in both subsets.
    assert "B" in videos[-1].classes and "C" in videos[-1].classes
    assert list(evaluate(scores, videos)["per_class_AUC"]) == ["A", "B", "C"]


def test_evaluate_hand_case_perfect():
    videos = [make_video("n0", [0, 0]), make_video("a0", [0, 1, 1], ["X"])]
    res = evaluate([np.array([0.1, 0.2]), np.array([0.3, 0.9, 0.8])], videos)
    for k in ("AUC", "AP", "AP_trapz", "AUC_A", "AP_A", "AP_A_trapz"):
        assert res[k] == pytest.approx(1.0), k
    assert res["FAR"] == 0.0 and res["per_class_AUC"] == {"X": 1.0}


def test_evaluate_bad_input():
    videos = [make_video("n0", [0, 0]), make_video("a0", [0, 1, 1], ["X"])]
    good = [np.array([0.1, 0.2]), np.array([0.3, 0.9, 0.8])]
    with pytest.raises(ValueError, match="evaluate: no videos"):
        evaluate([], [])
    with pytest.raises(ValueError, match="evaluate: got 1 score arrays for 2 videos"):
        evaluate(good[:1], videos)
    with pytest.raises(ValueError, match="video 'a0': 4 snippet scores but the video has T = 3 snippets"):
        evaluate([good[0], np.zeros(4)], videos)
    with pytest.raises(ValueError, match=r"video 'n0': 1 of 2 snippet scores are NaN or inf \(first at snippet 1\)"):
        evaluate([np.array([0.1, np.nan]), good[1]], videos)
    with pytest.raises(ValueError, match=r"video 'n0': scores must be 1-D \[T\], got shape \(2, 1\)"):
        evaluate([good[0][:, None], good[1]], videos)
    with pytest.raises(ValueError, match="AUC_A / AP_A need abnormal videos, but all 1 videos are normal"):
        evaluate(good[:1], videos[:1])
    with pytest.raises(ValueError, match="FAR needs normal videos, but all 1 videos are abnormal"):
        evaluate(good[1:], videos[1:])
    all_pos = [make_video("n0", [0, 0]), make_video("a0", [1, 1], ["X"])]
    # synthetic videos are scored at snippet level (identical metrics), so 2 snippets here
    with pytest.raises(ValueError, match="AUC on abnormal videos: needs both .* all 2 frames are anomalous"):
        evaluate([np.zeros(2), np.ones(2)], all_pos)


@CUDA
def test_evaluate_cuda_tensors():
    rng = np.random.default_rng(4)
    videos, scores = random_split(rng)
    res = evaluate([torch.tensor(s, device="cuda") for s in scores], videos)
    assert res["AUC"] == pytest.approx(evaluate(scores, videos)["AUC"], abs=1e-6)


def test_format_table():
    table = format_table({"MIL": {"AUC": 0.8123, "AP": 0.5}, "Ours": {"AUC": 0.9}}, keys=("AUC", "AP"))
    lines = table.splitlines()
    assert lines[0] == "| method | AUC | AP |"
    assert lines[2] == "| MIL | 81.23 | 50.00 |" and lines[3] == "| Ours | 90.00 | - |"


# ---------------------------------------------------------------- detection mAP

def naive_detection_map(pred, gt, thresholds, interpolated=False):
    """Straight from the text: per class, per threshold, predictions by descending score, each
    takes the unmatched same-video GT with the highest IoU >= threshold; AP from the ranks."""
    classes = list(dict.fromkeys(g[3] for g in gt))
    table = []
    for c in classes:
        row = []
        for thr in thresholds:
            ps = sorted([p for p in pred if p[3] == c], key=lambda p: -p[4])
            gs = [g for g in gt if g[3] == c]
            used = [False] * len(gs)
            flags = []
            for p in ps:
                best, best_iou = None, -1.0
                for j, g in enumerate(gs):
                    if used[j] or g[0] != p[0]:
                        continue
                    inter = max(0.0, min(p[2], g[2]) - max(p[1], g[1]))
                    iou = inter / ((p[2] - p[1]) + (g[2] - g[1]) - inter)
                    if iou >= thr and iou > best_iou:
                        best, best_iou = j, iou
                if best is not None:
                    used[best] = True
                flags.append(best is not None)
            precisions = [sum(flags[:k + 1]) / (k + 1) for k in range(len(flags))]
            if not interpolated:
                row.append(sum(pr for pr, f in zip(precisions, flags) if f) / len(gs))
            else:
                ap, prev_recall = 0.0, 0.0
                for k, f in enumerate(flags):
                    if f:
                        recall = sum(flags[:k + 1]) / len(gs)
                        ap += (recall - prev_recall) * max(precisions[k:])
                        prev_recall = recall
                row.append(ap)
        table.append(row)
    return np.array(table)


def random_instances(rng, n_videos=6, classes=("A", "B", "C"), integer=True):
    gt, pred = [], []
    for v in range(n_videos):
        for _ in range(int(rng.integers(0, 4))):
            s = rng.integers(0, 80) if integer else rng.random() * 80
            gt.append((f"v{v}", float(s), float(s + (rng.integers(2, 20) if integer else 2 + rng.random() * 18)),
                       str(rng.choice(classes))))
        for _ in range(int(rng.integers(0, 8))):
            s = rng.integers(0, 80) if integer else rng.random() * 80
            pred.append((f"v{v}", float(s), float(s + (rng.integers(1, 25) if integer else 1 + rng.random() * 24)),
                         str(rng.choice(classes)), float(np.round(rng.random(), 1))))
    # Predictions near ground truth so that matches happen at every threshold.
    for g in gt[::2]:
        pred.append((g[0], g[1] + 1, g[2] + 1, g[3], float(rng.random())))
    return pred, gt


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("mode", ["vadclip", "interpolated"])
def test_detection_map_matches_naive(integer, mode):
    rng = np.random.default_rng(5 + integer)
    thresholds = (0.1, 0.2, 0.3, 0.4, 0.5)
    for _ in range(15):
        pred, gt = random_instances(rng, integer=integer)
        if not gt:
            continue
        res = detection_map(pred, gt, thresholds, ap_mode=mode)
        ref = naive_detection_map(pred, gt, thresholds, interpolated=mode == "interpolated")
        got = np.array([res["per_class_AP"][c] for c in res["classes"]])
        np.testing.assert_allclose(got, ref, atol=1e-12)
        np.testing.assert_allclose([res[f"mAP@{t:g}"] for t in thresholds], ref.mean(0), atol=1e-12)
        assert res["AVG"] == pytest.approx(ref.mean())


def test_detection_perfect_and_empty():
    gt = [("v0", 0, 10, "A"), ("v0", 20, 30, "B"), ("v1", 5, 9, "A")]
    perfect = [Instance(v, s, e, c, 0.9) for v, s, e, c in gt]
    res = detection_map(perfect, gt)
    assert res["AVG"] == 1.0 and all(res[f"mAP@{t:g}"] == 1.0 for t in (0.1, 0.2, 0.3, 0.4, 0.5))
    empty = detection_map([], gt)
    assert empty["AVG"] == 0.0 and empty["per_class_AP"] == {"A": [0.0] * 5, "B": [0.0] * 5}
    # Right class, wrong video, or right segment, wrong class: no match.
    assert detection_map([("v1", 20, 30, "A", 1.0), ("v0", 0, 10, "B", 1.0)], gt)["AVG"] == 0.0


def test_detection_known_iou():
    gt = [("v0", 0, 10, "A")]
    assert temporal_iou([[6, 16]], [[0, 10]])[0, 0] == pytest.approx(0.25)
    res = detection_map([("v0", 6, 16, "A", 1.0)], gt)  # IoU 4 / 16 = 0.25
    assert res["per_class_AP"]["A"] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert res["AVG"] == pytest.approx(0.4)
    res = detection_map([("v0", 0, 5, "A", 1.0)], gt)  # IoU exactly 0.5 counts at 0.5 (>=)
    assert res["per_class_AP"]["A"] == [1.0] * 5


def test_detection_duplicates_are_false_positives():
    gt = [("v0", 0, 10, "A"), ("v1", 0, 10, "A")]
    pred = [("v0", 0, 10, "A", 0.9), ("v0", 0, 10, "A", 0.8), ("v1", 0, 10, "A", 0.7)]
    res = detection_map(pred, gt, iou_thresholds=(0.5,))
    assert res["mAP@0.5"] == pytest.approx((1 + 2 / 3) / 2)  # ranks: TP, FP (duplicate), TP
    # A duplicate ranked last does not lower the AP (it comes after the last true positive).
    pred[1] = ("v0", 0, 10, "A", 0.6)
    assert detection_map(pred, gt, iou_thresholds=(0.5,))["mAP@0.5"] == 1.0
    # Ties in score keep input order (stable sort).
    tp, fp = ("v0", 0, 10, "A", 0.9), ("v9", 0, 10, "A", 0.9)
    assert detection_map([fp, tp], gt[:1])["AVG"] == pytest.approx(0.5)
    assert detection_map([tp, fp], gt[:1])["AVG"] == 1.0


def test_detection_interpolation_differs_by_hand():
    gt = [("v0", 0, 10, "A"), ("v1", 0, 10, "A")]
    pred = [("v0", 0, 10, "A", 0.9), ("v2", 0, 10, "A", 0.8), ("v3", 0, 10, "A", 0.7), ("v1", 0, 10, "A", 0.6)]
    # ranks TP FP FP TP: precisions 1, 1/2, 1/3, 1/2; recall 1/2 then 1.
    assert detection_map(pred, gt, (0.5,))["AVG"] == pytest.approx((1 + 0.5) / 2)
    assert detection_map(pred, gt, (0.5,), ap_mode="interpolated")["AVG"] == pytest.approx((1 + 0.5) / 2)
    pred2 = pred[:1] + [("v2", 0, 10, "A", 0.8), ("v1", 0, 10, "A", 0.7), ("v1", 50, 60, "A", 0.65)]
    gt2 = gt + [("v1", 50, 60, "A")]
    # ranks TP FP TP TP (3 GT): step 1/3 (1 + 2/3 + 3/4); interpolated envelope 1, 3/4, 3/4.
    assert detection_map(pred2, gt2, (0.5,))["AVG"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert detection_map(pred2, gt2, (0.5,), ap_mode="interpolated")["AVG"] == pytest.approx((1 + 3 / 4 + 3 / 4) / 3)


def test_detection_classes_and_gt_from_videos():
    videos = [Video("v0", np.zeros((20, 2), np.float32), 1, ("A",), events=[(2, 6, "A"), (10, 12, "A")]),
              Video("v1", np.zeros((8, 2), np.float32), 0)]
    gt = ground_truth_instances(videos)
    assert gt == [Instance("v0", 2.0, 6.0, "A"), Instance("v0", 10.0, 12.0, "A")]
    res = detection_map([("v0", 2, 6, "A", 0.5), ("v1", 0, 8, "Z", 1.0)], gt, classes=("A", "Z"))
    assert res["classes"] == ("A",) and res["AVG"] == pytest.approx(0.5)  # Z has no GT: left out


def test_detection_bad_input():
    gt = [("v0", 0, 10, "A")]
    with pytest.raises(ValueError, match="ground truth is empty"):
        detection_map([], [])
    with pytest.raises(ValueError, match=r"predictions\[0\] has 4 fields, expected \(video, start, end, class, score\)"):
        detection_map([("v0", 0, 10, "A")], gt)
    with pytest.raises(ValueError, match=r"ground_truth\[0\] in video 'v0' has end 3.0 <= start 5.0"):
        detection_map([], [("v0", 5, 3, "A")])
    with pytest.raises(ValueError, match=r"predictions\[1\] .* NaN or inf"):
        detection_map([("v0", 0, 10, "A", 0.5), ("v0", 0, 10, "A", np.nan)], gt)
    with pytest.raises(ValueError, match=r"IoU thresholds must be a non-empty list in \(0, 1\], got \[0.0, 0.5\]"):
        detection_map([], gt, iou_thresholds=(0.0, 0.5))
    with pytest.raises(ValueError, match="none of the classes \\['B'\\] has a ground-truth instance"):
        detection_map([], gt, classes=("B",))
    with pytest.raises(ValueError, match="ap_mode must be"):
        detection_map([], gt, ap_mode="voc")


def test_snippet_level_shortcut_equals_frames():
    """evaluate() works on snippets for synthetic videos: identical to the x16 frame metrics."""
    from vadbook.metrics import ap_stepwise, ap_trapezoid, far, frame_auc, snippets_to_frames
    rng = np.random.default_rng(3)
    videos = [make_video(f"n{i}", [0] * 20) for i in range(3)]
    videos += [make_video(f"a{i}", ([0] * 7 + [1] * 6 + [0] * 7), ["X"]) for i in range(3)]
    scores = [np.round(rng.random(20), 2) for _ in videos]     # ties on purpose
    out = evaluate(scores, videos)
    fs = np.concatenate([snippets_to_frames(s) for s in scores])
    fg = np.concatenate([v.frame_gt for v in videos])
    assert out["AUC"] == pytest.approx(frame_auc(fs, fg), abs=1e-12)
    assert out["AP"] == pytest.approx(ap_stepwise(fs, fg), abs=1e-12)
    assert out["AP_trapz"] == pytest.approx(ap_trapezoid(fs, fg), abs=1e-12)
    assert out["FAR"] == pytest.approx(far(fs[: 3 * 20 * 16]), abs=1e-12)
