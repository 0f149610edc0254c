"""The synthetic benchmark: determinism, split sizes, annotation invariants, and its statistics
against the real ones of ``reference/dataset-stats.md`` within stated tolerances.

Reference figures used below (UCF-Crime / XD-Violence, see dataset-stats.md):

- lengths: log-normal, ln(snippets) median UCF abnormal 7.66 - ln 16, normal 7.51 - ln 16;
  XD violent 4.56, normal 5.30. Tolerance: the generated median within 20 % of exp(mu).
- anomalous fraction per abnormal test video: median UCF 0.141 (tolerance [0.08, 0.25]);
  XD 0.31 (tolerance [0.20, 0.50]).
- events per abnormal video: UCF training 2.50 glances (tolerance [2.0, 3.0]), test 1.11
  ([1.0, 1.3]); XD training 2.25 glances, test 2.48 (tolerance [2.0, 3.5] for both: XD car
  accidents carry many short intervals, mean 4.9).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from vadbook.data import make_benchmark, statistics
from vadbook.data import synthetic
from vadbook.data.presets import PRESETS

LN16 = math.log(16)


@pytest.fixture(scope="module")
def ucf():
    return make_benchmark("ucf", "small", seed=0)


@pytest.fixture(scope="module")
def xd():
    return make_benchmark("xd", "small", seed=0)


def all_videos(bench):
    return bench.train + bench.val + bench.test


# ---------------------------------------------------------------- determinism and sizes

def test_same_seed_gives_identical_arrays(ucf):
    again = make_benchmark("ucf", "small", seed=0)
    assert again.name == ucf.name
    for split in ("train", "val", "test"):
        a, b = ucf.split(split), again.split(split)
        assert [v.name for v in a] == [v.name for v in b]
        for va, vb in zip(a, b):
            assert np.array_equal(va.features, vb.features)
            assert np.array_equal(va.gt, vb.gt)
            assert va.events == vb.events and va.classes == vb.classes
            assert (va.glances is None) == (vb.glances is None)
            if va.glances is not None:
                assert np.array_equal(va.glances, vb.glances)


def test_different_seed_gives_different_videos(ucf):
    other = make_benchmark("ucf", "small", seed=1)
    assert other.name != ucf.name
    assert [v.T for v in other.train] != [v.T for v in ucf.train]
    assert not np.allclose(other.train[0].features[:5], ucf.train[0].features[:5])


def test_scale_env_variable(monkeypatch):
    monkeypatch.setenv("VADBOOK_SCALE", "small")
    b = make_benchmark("xd", seed=3, dim=24)
    assert "-small-" in b.name and b.feature_dim == 24


@pytest.mark.parametrize("preset", ["ucf", "xd"])
def test_small_split_sizes(preset, ucf, xd):
    bench = {"ucf": ucf, "xd": xd}[preset]
    p = PRESETS[preset]
    assert (len(bench.train), len(bench.val), len(bench.test)) == (240, 60, 120)
    assert bench.feature_dim == 128
    assert bench.classes == tuple(c.name for c in p.classes)
    assert bench.multi_label == (preset == "xd")
    for split, n, frac in (("train", 240, p.n_train_normal / p.n_train),
                           ("val", 60, p.n_train_normal / p.n_train),
                           ("test", 120, p.n_test_normal / p.n_test)):
        videos = bench.split(split)
        assert sum(v.label == 0 for v in videos) == round(n * frac), split
    assert max(v.T for v in all_videos(bench)) <= 480
    assert min(v.T for v in all_videos(bench)) >= 10


@pytest.mark.parametrize("preset", ["ucf", "xd"])
def test_paper_split_counts(preset, monkeypatch):
    """Paper-scale counts, with the feature synthesis stubbed out (it takes 20-50 s at 1024-d).

    Only ``_features`` is replaced; lengths, classes and events are drawn as usual.
    """
    monkeypatch.setattr(synthetic, "_features",
                        lambda w, T, events, rng: np.zeros((T, 1), np.float32))
    p = PRESETS[preset]
    b = make_benchmark(preset, "paper", seed=0)
    assert (len(b.train), len(b.val), len(b.test)) == (p.n_train, 160, p.n_test)
    assert sum(v.label == 0 for v in b.train) == p.n_train_normal
    assert sum(v.label == 0 for v in b.test) == p.n_test_normal
    for split, real in (("train", {c.name: c.train for c in p.classes}),
                        ("test", {c.name: c.test for c in p.classes})):
        first = [v.classes[0] for v in b.split(split) if v.label == 1]
        for c, n_real in real.items():
            # UCF: the real per-class counts up to the per-class minimum (3 train / 2 test);
            # XD: real counts include multi-label videos, here the first class is counted
            assert abs(first.count(c) - n_real) <= 0.15 * n_real + 3, (split, c, first.count(c), n_real)
    assert max(v.T for v in b.train) > 480       # no 480-snippet clip at paper scale


# ---------------------------------------------------------------- annotation invariants

@pytest.mark.parametrize("preset", ["ucf", "xd"])
def test_events_gt_and_glances_are_consistent(preset, ucf, xd):
    bench = {"ucf": ucf, "xd": xd}[preset]
    for split in ("train", "val", "test"):
        for v in bench.split(split):
            if v.label == 0:
                assert v.classes == () and v.events == [] and v.glances is None
                assert v.gt.sum() == 0
                continue
            assert len(v.events) >= 1
            assert {c for _, _, c in v.events} <= set(v.classes)
            prev_end = 0
            for s, e, _ in v.events:                 # sorted, non-overlapping, inside [0, T)
                assert prev_end <= s < e <= v.T, (v.name, v.events)
                prev_end = e
            gt = np.zeros(v.T, np.float32)
            for s, e, _ in v.events:
                gt[s:e] = 1
            assert np.array_equal(v.gt, gt), v.name
            assert v.frame_gt.shape == (16 * v.T,)
            assert v.strengths is not None and len(v.strengths) == len(v.events)
            assert all(0 < s <= 1 for s in v.strengths)
            if split != "train":
                assert v.glances is None
                continue
            assert len(v.glances) == len(v.events), v.name           # one glance per event
            for g, (s, e, _) in zip(v.glances, v.events):
                assert s <= g < e, (v.name, g, s, e)
            assert np.all(np.diff(v.glances) > 0)


def test_xd_is_multi_label_and_ucf_is_not(ucf, xd):
    assert all(len(v.classes) <= 1 for v in all_videos(ucf))
    assert any(len(v.classes) >= 2 for v in xd.train)
    assert any(len(v.classes) >= 2 for v in all_videos(xd))


@pytest.mark.parametrize("preset", ["ucf", "xd"])
def test_every_class_in_train_and_test(preset, ucf, xd):
    bench = {"ucf": ucf, "xd": xd}[preset]
    for split in ("train", "val", "test"):
        present = {c for v in bench.split(split) for c in v.classes}
        assert present == set(bench.classes), (split, set(bench.classes) - present)


# ---------------------------------------------------------------- statistics vs dataset-stats.md

@pytest.mark.parametrize("preset,abn_mu,norm_mu", [
    ("ucf", 7.66 - LN16, 7.51 - LN16),
    ("xd", 4.56, 5.30),
])
def test_length_medians_within_20_percent(preset, abn_mu, norm_mu, ucf, xd):
    videos = all_videos({"ucf": ucf, "xd": xd}[preset])
    for label, mu in ((1, abn_mu), (0, norm_mu)):
        med = np.median([v.T for v in videos if v.label == label])
        assert abs(med / math.exp(mu) - 1) < 0.20, (preset, label, med, math.exp(mu))


@pytest.mark.parametrize("preset,frac_range,train_range,test_range", [
    ("ucf", (0.08, 0.25), (2.0, 3.0), (1.0, 1.3)),
    ("xd", (0.20, 0.50), (2.0, 3.5), (2.0, 3.5)),
])
def test_anomalous_fraction_and_events_per_video(preset, frac_range, train_range, test_range, ucf, xd):
    bench = {"ucf": ucf, "xd": xd}[preset]
    test = statistics(bench.test)
    train = statistics(bench.train)
    assert frac_range[0] <= test["anomalous_frac_abnormal_median"] <= frac_range[1], test
    assert train_range[0] <= train["events_per_abnormal_mean"] <= train_range[1], train
    assert test_range[0] <= test["events_per_abnormal_mean"] <= test_range[1], test
    # training videos carry more events than test videos (glances vs test annotations), UCF
    if preset == "ucf":
        assert train["events_per_abnormal_mean"] > test["events_per_abnormal_mean"] + 0.5


def test_statistics_matches_direct_computation(ucf):
    videos = ucf.test
    st = statistics(videos)
    abn = [v for v in videos if v.label == 1]
    lengths = np.array([v.T for v in videos])
    assert st["videos"] == len(videos) and st["abnormal"] == len(abn)
    assert st["median_len_snippets"] == pytest.approx(np.median(lengths))
    assert st["mean_len_snippets"] == pytest.approx(lengths.mean())
    frames = np.concatenate([v.frame_gt for v in videos])
    assert st["anomalous_frac_all"] == pytest.approx(frames.mean())
    assert st["anomalous_frac_abnormal_median"] == pytest.approx(np.median([v.gt.mean() for v in abn]))
    assert st["events_per_abnormal_mean"] == pytest.approx(np.mean([len(v.events) for v in abn]))


def test_per_class_durations_follow_the_real_order(ucf):
    """Median event duration per class ranks like the real per-class medians (Spearman > 0.7)."""
    specs = {c.name: c.dur_median / 16 for c in PRESETS["ucf"].classes}
    dur = {c: [] for c in specs}
    for v in all_videos(ucf):
        for s, e, c in v.events:
            dur[c].append(e - s)
    names = sorted(specs)
    gen = np.array([np.median(dur[c]) for c in names])
    real = np.array([specs[c] for c in names])
    rank = lambda a: np.argsort(np.argsort(a))
    rho = np.corrcoef(rank(gen), rank(real))[0, 1]
    assert rho > 0.7, dict(zip(names, gen))
    # short classes are not stretched: road accidents (90 frames ~ 6 snippets) stay short
    assert np.median(dur["RoadAccidents"]) < 12
    assert np.median(dur["Arrest"]) > 3 * np.median(dur["RoadAccidents"])


# ---------------------------------------------------------------- the generator's hidden directions

def test_hidden_directions_match_the_benchmark(ucf):
    h = synthetic.hidden_directions("ucf", seed=0)
    C, D = len(ucf.classes), ucf.feature_dim
    assert h["signature"].shape == (C, D) and h["activity"].shape == (synthetic.ACTIVITY_DIM, D)
    assert np.allclose(np.linalg.norm(h["signature"], axis=1), 1.0)
    assert np.allclose(h["activity"] @ h["activity"].T, np.eye(synthetic.ACTIVITY_DIM), atol=1e-8)
    # the directions are those of the benchmark: a salient event projects onto its signature
    proj_in, proj_out = [], []
    for v in ucf.test:
        if v.label == 0:
            continue
        s, e, c = max(v.events, key=lambda ev: ev[1] - ev[0])
        u = h["signature"][ucf.classes.index(c)]
        p = v.features @ u
        proj_in.append(p[s:e].mean())
        proj_out.append(np.median(p[v.gt == 0]) if (v.gt == 0).any() else p.min())
    assert np.mean(np.array(proj_in) - np.array(proj_out)) > 1.0
    again = synthetic.hidden_directions("ucf", seed=1)
    assert not np.allclose(again["signature"], h["signature"])


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs,match", [
    (dict(preset="shanghai"), "unknown preset 'shanghai'"),
    (dict(scale="huge"), "unknown scale 'huge'"),
    (dict(seed=-1), "seed must be a non-negative integer, got -1"),
    (dict(seed=1.5), "seed must be a non-negative integer"),
    (dict(dim=8), r"dim=8 too small: need at least 21"),
])
def test_bad_input_raises(kwargs, match):
    args = dict(preset="ucf", scale="small", seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        make_benchmark(**args)


def test_hidden_directions_bad_input():
    with pytest.raises(ValueError, match="unknown preset"):
        synthetic.hidden_directions("shanghai")
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        synthetic.hidden_directions("xd", seed=-2)
