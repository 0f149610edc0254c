"""Tests of the glance pieces around the splatting core: the Algorithm 1 loop (public edge
quirk), the GlanceVAD score loss, and the glance annotation helpers of vadbook.data.glances.

The agreement of ``mine_glance_kernels`` / ``glance_targets`` with the loops of
:mod:`vadbook.splatting.naive_glance` is tested in ``test_splatting.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vadbook.data.annotations import read_glances
from vadbook.data.batching import glance_to_grid
from vadbook.data.glances import (glance_frames, glance_stats, perturb_video_glances, read_glance_snippets,
                                  split_supervision, with_glances, write_glances)
from vadbook.data.gt import glance_frame_to_grid
from vadbook.data.video import Video
from vadbook.losses import GlanceScoreLoss, glance_total_loss, topk_bce
from vadbook.nn import URDMU, MILHead, URDMUConfig
from vadbook.splatting import glance_targets, mine_glance_kernels
from vadbook.splatting.naive_glance import glance_targets_loop, mine_row_loop


# ----------------------------------------------------------------------------- Algorithm 1 loop

def test_public_right_edge_quirk_only_changes_the_last_snippet():
    A = [0.1, 0.2, 0.9, 0.95, 0.9, 0.92]
    assert mine_row_loop(A, [3], alpha=0.9) == {2, 3, 4, 5}
    assert mine_row_loop(A, [3], alpha=0.9, public_right_edge=True) == {2, 3, 4}
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        T = int(torch.randint(2, 30, (1,), generator=gen))
        s = torch.rand(T, generator=gen).tolist()
        g = sorted(set(torch.randint(0, T, (3,), generator=gen).tolist()))
        ours, public = mine_row_loop(s, g, alpha=0.5), mine_row_loop(s, g, alpha=0.5, public_right_edge=True)
        assert public <= ours and ours - public <= {T - 1}
        got = set(mine_glance_kernels(torch.tensor([s]), torch.tensor([g]), 0.5)[0].nonzero().flatten().tolist())
        assert got == ours


def test_loop_targets_render_glances_only_before_mining():
    s = [[0.1, 0.82, 0.9, 0.85, 0.1]]
    g = [[False, False, True, False, False]]
    v = [[True] * 5]
    assert glance_targets_loop(s, g, v, sigma=0.0, mine=False) == [[0, 0, 1, 0, 0]]
    assert glance_targets_loop(s, g, v, sigma=0.0) == [[0, 1, 1, 1, 0]]
    with pytest.raises(ValueError, match="kind"):
        glance_targets_loop(s, g, v, kind="gauss")


# ----------------------------------------------------------------------------- the score loss

def toy_batch(step=5, B=4, T=24):
    gen = torch.Generator().manual_seed(3)
    scores = torch.rand(B, T, generator=gen).clamp(0.02, 0.98).requires_grad_()
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 18:] = False
    glances = torch.zeros(B, T, dtype=torch.bool)
    glances[2, [4, 11]] = True
    glances[3, 20] = True
    return scores, {"label": torch.tensor([0.0, 0.0, 1.0, 1.0]), "mask": mask, "glances": glances, "step": step}


def test_glance_score_loss_is_eq8_with_mil_base():
    scores, batch = toy_batch()
    loss_fn = GlanceScoreLoss(alpha=0.8, sigma=0.1, mine_after=10)
    base = topk_bce(scores, batch["label"], batch["mask"])
    before, _ = glance_total_loss(scores, batch, base, alpha=0.8, sigma=0.1, mine=False)
    assert torch.allclose(loss_fn(scores, batch), before)                  # step 5: glances only
    after, _ = glance_total_loss(scores, batch, base, alpha=0.8, sigma=0.1, mine=True)
    assert torch.allclose(loss_fn(scores, {**batch, "step": 11}), after)  # step 11: mined
    assert not torch.allclose(before, after)
    binary = GlanceScoreLoss(sigma=0.0, mine=False)
    y = glance_targets(scores, batch["glances"], sigma=0.0, mine=False, mask=batch["mask"])
    assert y.sum() == 3 and binary(scores, batch).requires_grad
    loss_fn(scores, batch).backward()
    assert torch.isfinite(scores.grad).all()


def test_glance_score_loss_tag_and_errors():
    assert GlanceScoreLoss().tag == "a0.9-s0.1-normal-mine-dyn-w0"
    assert GlanceScoreLoss(mine=False, sigma=0, kernel="laplace").tag == "a0.9-s0-laplace-nomine-w0"
    assert GlanceScoreLoss(dynamic=False, reduce="sum").tag == "a0.9-s0.1-normal-mine-fixed-w0-sum-max"
    assert len({GlanceScoreLoss(mine_after=m).tag for m in (0, 10)}) == 2
    with pytest.raises(ValueError, match="kernel"):
        GlanceScoreLoss(kernel="gauss")
    with pytest.raises(ValueError, match="alpha"):
        GlanceScoreLoss(alpha=1.5)


@pytest.mark.parametrize("model_name", ["mlp", "urdmu"])
def test_glance_score_loss_trains_both_baselines(model_name, device):
    torch.manual_seed(0)
    B, T, D = 4, 16, 12
    if model_name == "mlp":
        model = MILHead(D, hidden=16, bottleneck=8)
    else:
        model = URDMU(URDMUConfig(in_dim=D, dim=16, depth=1, heads=2, dim_head=8, a_slots=4, n_slots=4,
                                  head_hidden=8))
    model.to(device).train()
    x = torch.randn(B, T, D, device=device)
    _, batch = toy_batch(step=3, B=B, T=T + 8)
    batch = {k: (v[:, :T] if torch.is_tensor(v) and v.dim() == 2 else v) for k, v in batch.items()}
    batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
    batch["glances"][3, 10] = True
    out = model(x, batch["mask"], labels=batch["label"]) if model_name == "urdmu" else model(x, batch["mask"])
    loss, parts = model.loss(out, batch, score_loss=GlanceScoreLoss())
    loss.backward()
    assert torch.isfinite(loss) and loss.device.type == device.type
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ----------------------------------------------------------------------------- annotation files

def video(name, T, events, glances, label=1):
    x = np.zeros((T, 4), np.float32)
    return Video(name, x, label, ("Abuse",) if label else (), events=[(s, e, "Abuse") for s, e in events],
                 glances=None if glances is None else np.array(glances))


@pytest.fixture
def videos():
    return [video("Abuse001_x264", 40, [(3, 10), (20, 30)], [5, 25]),
            video("Normal_Videos_001_x264", 30, [], None, label=0),
            video("Abuse002_x264", 12, [(0, 12)], [11]),
            video("Abuse003_x264", 50, [(10, 14)], [12])]


def test_csv_round_trip_in_the_public_format(tmp_path, videos):
    path = write_glances(tmp_path / "ucf_glance_annotations.csv", videos)
    lines = path.read_text().splitlines()
    assert lines[:3] == ["video-id,glance", "Abuse001_x264,88", "Abuse001_x264,408"]   # 16 s + 8
    assert len(lines) == 1 + 4
    frames = read_glances(path)
    assert frames["Abuse002_x264"].tolist() == [11 * 16 + 8]
    snippets = read_glance_snippets(path, videos)
    assert set(snippets) == {"Abuse001_x264", "Abuse002_x264", "Abuse003_x264"}
    back = with_glances(videos, snippets)
    for v, w in zip(videos, back):
        assert (v.glances is None and w.glances is None) or v.glances.tolist() == w.glances.tolist()
    with pytest.raises(ValueError, match="not in the given list"):
        read_glance_snippets(path, videos[:2])
    with pytest.raises(ValueError, match="offset"):
        glance_frames(videos[0], offset=16)


def test_frame_grid_rule_agrees_with_snippet_rule_at_offset_zero(videos):
    for v in videos:
        if v.glances is None:
            continue
        for L in (7, 16, 64, 200):
            by_frame = glance_frame_to_grid(glance_frames(v, offset=0), v.T, L)
            assert by_frame.tolist() == glance_to_grid(v.glances, v.T, L).tolist()
            late = glance_frame_to_grid(glance_frames(v, offset=15), v.T, L)   # later by < L / T cells
            assert ((late - by_frame >= 0) & (late - by_frame <= max(1, int(np.ceil(L / v.T))))).all()


def test_perturbation_moves_within_bounds(videos):
    assert all((a.glances is None) or a.glances.tolist() == b.glances.tolist()
               for a, b in zip(videos, perturb_video_glances(videos, 0)))
    for m in (10, 50, 100, 1000):
        moved = perturb_video_glances(videos, m, seed=1)
        assert moved[1].glances is None
        for a, b in zip(videos, moved):
            if a.glances is None:
                continue
            assert ((b.glances >= 0) & (b.glances < a.T)).all() and len(b.glances) == len(a.glances)
            assert (np.abs(np.sort(b.glances) - np.sort(a.glances)) * 16 <= m + 16).all()
    again = perturb_video_glances(videos, 50, seed=1)
    assert [v.glances is None or v.glances.tolist() for v in again] == \
           [v.glances is None or v.glances.tolist() for v in perturb_video_glances(videos, 50, seed=1)]
    with pytest.raises(ValueError, match="max_frames"):
        perturb_video_glances(videos, -1)


def test_split_supervision_shares(videos):
    many = [video(f"Abuse{i:03d}_x264", 20, [(2, 8)], [4]) for i in range(20)] + videos[1:2]
    out = split_supervision(many, weak=0.25, glance=0.5, seed=0)
    abnormal = [v for v in out if v.label == 1]
    assert len(abnormal) == 15 and sum(v.glances is not None for v in abnormal) == 10
    assert sum(v.label == 0 for v in out) == 1
    full = split_supervision(many, weak=0.0, glance=1.0)
    assert len(full) == len(many) and all(v.glances is not None for v in full if v.label)
    weak = split_supervision(many, weak=1.0, glance=0.0)
    assert all(v.glances is None for v in weak)
    with pytest.raises(ValueError, match="weak"):
        split_supervision(many, weak=0.6, glance=0.6)
    with pytest.raises(ValueError, match="leave none"):
        split_supervision(many, weak=0.0, glance=0.0)


def test_glance_stats(videos):
    st = glance_stats(videos)
    assert st["abnormal"] == 3 and st["with_glances"] == 3
    assert st["histogram"] == {1: 2, 2: 1} and st["mean_per_video"] == pytest.approx(4 / 3)
    assert st["gap_median_frames"] == 20 * 16 and st["inside_events"] == 1.0
    with pytest.raises(ValueError, match="no glances"):
        glance_stats(videos[1:2])


def test_synthetic_benchmark_glances_follow_the_protocol():
    from vadbook.data import make_benchmark
    bench = make_benchmark("ucf", "small", seed=0)
    st = glance_stats(bench.train)
    assert st["with_glances"] == st["abnormal"] and st["inside_events"] == 1.0
    assert 1.8 < st["mean_per_video"] < 3.2                      # real UCF-Crime: 2.50
    events = sum(len(v.events) for v in bench.train if v.label == 1)
    assert sum(len(v.glances) for v in bench.train if v.label == 1) == events   # one click per event


def test_real_videos_keep_frames_and_snippets_in_step():
    from vadbook.data.batching import to_grid
    from vadbook.data.real import RealVideo
    x = np.zeros((40, 4), np.float32)
    v = RealVideo("Abuse001_x264", x, 1, ("Abuse",), glances=np.array([3, 30]), glance_frames=np.array([50, 485]))
    assert glance_frames(v).tolist() == [50, 485]                       # the annotated frames, not 16 s + 8
    moved = perturb_video_glances([v], 20, seed=0)[0]
    assert (moved.glances == moved.glance_frames // 16).all()
    assert (np.abs(moved.glance_frames - np.array([50, 485])) <= 20).all()
    grid = to_grid(moved, 16)["glances"]
    assert np.flatnonzero(grid).tolist() == sorted(set(glance_frame_to_grid(moved.glance_frames, 40, 16).tolist()))
    weak = split_supervision([v, video("Normal_Videos_001_x264", 30, [], None, label=0)], weak=1.0, glance=0.0)
    assert weak[0].glances is None and weak[0].glance_frames is None and not to_grid(weak[0], 16)["glances"].any()
    assert with_glances([v], {"Abuse001_x264": np.array([5])})[0].glance_frames is None
