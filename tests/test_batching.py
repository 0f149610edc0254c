"""Resampling and batching against naive oracles written from reference/formats.md.

formats.md: "resample a [T, D] video to L segments: bin edges linspace(0, T, L+1) cast to int,
each bin mean-pooled, an empty bin takes feat[edge_i]"; GlanceVAD maps a glance to the grid
as int(g / T * L).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vadbook.data import BalancedBatcher, Video, pad_batch, resample, to_grid
from vadbook.data.batching import glance_to_grid, resample_edges


# ---------------------------------------------------------------- oracles (one bin at a time)

def oracle_resample(feat, L):
    T = feat.shape[0]
    edges = np.linspace(0, T, L + 1).astype(int)
    out = []
    for i in range(L):
        lo, hi = edges[i], edges[i + 1]
        if lo == hi:
            out.append(feat[lo])
        else:
            out.append(feat[lo:hi].mean(axis=0))
    return np.stack(out)


def oracle_glance(g, T, L):
    return min(int(g / T * L), L - 1)


def make_video(name, T, label, classes=(), events=(), glances=None, D=4, seed=0):
    rng = np.random.default_rng(seed)
    return Video(name, rng.standard_normal((T, D)).astype(np.float32), label, tuple(classes),
                 events=list(events), glances=glances)


# ---------------------------------------------------------------- resample

@pytest.mark.parametrize("T,L", [(1, 1), (1, 7), (5, 12), (12, 12), (13, 12), (200, 32),
                                 (33, 32), (31, 32), (1000, 200), (7, 3)])
def test_resample_matches_oracle(T, L):
    rng = np.random.default_rng(T * 1000 + L)
    feat = rng.standard_normal((T, 6)).astype(np.float32)
    out = resample(feat, L)
    assert out.shape == (L, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out, oracle_resample(feat.astype(np.float64), L), rtol=1e-5, atol=1e-5)


def test_resample_identity_when_T_equals_L_and_1d_input():
    feat = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(resample(feat, 10), feat)
    np.testing.assert_allclose(resample(feat, 5), [0.5, 2.5, 4.5, 6.5, 8.5])
    # T < L: a snippet is repeated; the empty bins take feat[edge_i]
    np.testing.assert_array_equal(resample(np.array([1.0, 2.0]), 4), oracle_resample(np.array([1.0, 2.0]), 4))
    assert resample(np.array([3.0]), 4).tolist() == [3.0] * 4


def test_resample_edges_and_errors():
    assert resample_edges(10, 4).tolist() == [0, 2, 5, 7, 10]
    with pytest.raises(ValueError, match="T >= 1 and L >= 1, got T=0, L=4"):
        resample(np.zeros((0, 3)), 4)
    with pytest.raises(ValueError, match="got T=3, L=0"):
        resample(np.zeros((3, 3)), 0)


# ---------------------------------------------------------------- glances and to_grid

def test_glance_to_grid_rule():
    rng = np.random.default_rng(0)
    for _ in range(50):
        T, L = int(rng.integers(1, 400)), int(rng.integers(1, 250))
        g = rng.integers(0, T, size=5)
        assert glance_to_grid(g, T, L).tolist() == [oracle_glance(x, T, L) for x in g]
    assert glance_to_grid(np.array([0, 99]), 100, 10).tolist() == [0, 9]


def test_to_grid_resample_mode():
    v = make_video("a", 90, 1, ("X",), events=[(10, 30, "X")], glances=np.array([15]))
    g = to_grid(v, 32)
    assert g["x"].shape == (32, 4) and g["mask"].all()
    np.testing.assert_allclose(g["x"], oracle_resample(v.features.astype(np.float64), 32), atol=1e-5)
    np.testing.assert_allclose(g["gt"], oracle_resample(v.gt.astype(np.float64), 32), atol=1e-6)
    assert np.flatnonzero(g["glances"]).tolist() == [oracle_glance(15, 90, 32)]
    short = to_grid(make_video("s", 5, 0), 8)        # T < L is stretched, still all valid
    assert short["mask"].all() and short["x"].shape == (8, 4)


@pytest.mark.parametrize("T", [1, 7, 16, 40])
def test_to_grid_pad_mode(T):
    L = 16
    glances = np.array([T // 2]) if T > 1 else np.array([0])
    v = make_video("p", T, 1, ("X",), events=[(0, max(1, T // 2), "X")], glances=glances, seed=T)
    g = to_grid(v, L, mode="pad")
    n = min(T, L)
    assert g["mask"].tolist() == [True] * n + [False] * (L - n)
    assert g["x"].shape == (L, 4) and g["gt"].shape == (L,) and g["glances"].shape == (L,)
    if T <= L:      # shorter (or equal) videos are copied unchanged, then zero-padded
        np.testing.assert_array_equal(g["x"][:T], v.features)
        np.testing.assert_array_equal(g["gt"][:T], v.gt)
        assert np.flatnonzero(g["glances"]).tolist() == glances.tolist()
    else:           # longer videos are resampled as in resample mode
        np.testing.assert_allclose(g["x"], oracle_resample(v.features.astype(np.float64), L), atol=1e-5)
        assert np.flatnonzero(g["glances"]).tolist() == [oracle_glance(glances[0], T, L)]
    assert (g["x"][n:] == 0).all() and (g["gt"][n:] == 0).all() and not g["glances"][n:].any()


def test_to_grid_bad_mode():
    with pytest.raises(ValueError, match="unknown batching mode 'crop'"):
        to_grid(make_video("a", 10, 0), 8, mode="crop")


# ---------------------------------------------------------------- BalancedBatcher

def small_set(n_normal=5, n_abnormal=3):
    vids = [make_video(f"n{i}", 10 + 3 * i, 0, seed=i) for i in range(n_normal)]
    for i in range(n_abnormal):
        cls = ("B",) if i % 2 else ("A", "C")
        T = 12 + 5 * i
        vids.append(make_video(f"a{i}", T, 1, cls, events=[(2, 6, cls[0])], glances=np.array([3]), seed=100 + i))
    return vids


def test_balanced_batcher_shapes_and_balance(device):
    vids = small_set()
    b = BalancedBatcher(vids, ("A", "B", "C"), batch_size=4, seq_len=8, seed=0, device=device)
    batch = b.sample()
    assert batch["x"].shape == (8, 8, 4) and batch["x"].device.type == device.type
    assert batch["mask"].shape == (8, 8) and batch["mask"].dtype == torch.bool
    assert batch["label"].tolist() == [0.0] * 4 + [1.0] * 4
    idx = batch["index"].cpu().numpy()
    assert all(vids[i].label == 0 for i in idx[:4]) and all(vids[i].label == 1 for i in idx[4:])
    assert (batch["class_idx"][:4] == -1).all()
    for row, i in enumerate(idx):
        v = vids[i]
        np.testing.assert_allclose(batch["x"][row].cpu().numpy(), to_grid(v, 8)["x"], atol=1e-6)
        expect_first = -1 if not v.classes else ("A", "B", "C").index(v.classes[0])
        assert batch["class_idx"][row].item() == expect_first
        assert batch["classes"][row].tolist() == [float(c in v.classes) for c in ("A", "B", "C")]
        assert batch["glances"][row].sum().item() == (1 if v.label else 0)
    # 3 abnormal videos, batch_size 4: drawn with replacement
    assert len(set(idx[4:].tolist())) <= 3


def test_balanced_batcher_is_deterministic_per_seed():
    vids = small_set()

    def draws(seed):
        b = BalancedBatcher(vids, ("A", "B", "C"), batch_size=2, seq_len=8, seed=seed)
        return [b.sample()["index"].tolist() for _ in range(10)]

    assert draws(7) == draws(7)
    assert draws(0) != draws(1)


def test_balanced_batcher_without_replacement_when_enough_videos():
    vids = small_set(n_normal=6, n_abnormal=6)
    b = BalancedBatcher(vids, ("A", "B", "C"), batch_size=6, seq_len=8, seed=0)
    idx = b.sample()["index"].tolist()
    assert len(set(idx[:6])) == 6 and len(set(idx[6:])) == 6
    assert b.all()["x"].shape == (12, 8, 4)


def test_balanced_batcher_errors():
    vids = small_set()
    with pytest.raises(ValueError, match="need normal and abnormal videos; got 0 normal and 3 abnormal"):
        BalancedBatcher([v for v in vids if v.label], ("A", "B", "C"))
    with pytest.raises(ValueError, match="got 5 normal and 0 abnormal"):
        BalancedBatcher([v for v in vids if not v.label], ("A", "B", "C"))
    with pytest.raises(ValueError, match="batch_size and seq_len must be >= 1, got 0, 8"):
        BalancedBatcher(vids, ("A", "B", "C"), batch_size=0, seq_len=8)
    with pytest.raises(ValueError, match="class 'C' not in"):
        BalancedBatcher(vids, ("A", "B"), batch_size=2, seq_len=8)


# ---------------------------------------------------------------- pad_batch

def test_pad_batch(device):
    vids = [make_video("a", 3, 0), make_video("b", 7, 0, seed=1), make_video("c", 1, 0, seed=2)]
    x, mask = pad_batch(vids, device)
    assert x.shape == (3, 7, 4) and mask.shape == (3, 7) and x.device.type == device.type
    assert mask.sum(1).tolist() == [3, 7, 1]
    for i, v in enumerate(vids):
        np.testing.assert_array_equal(x[i, : v.T].cpu().numpy(), v.features)
        assert (x[i, v.T:] == 0).all()
    with pytest.raises(ValueError, match="video 'd' has D=5, expected 4"):
        pad_batch(vids + [make_video("d", 2, 0, D=5)])
