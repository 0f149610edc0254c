"""Tests of the TGS training objective (GS-MoE Eq. (6) with its warm-up) and of the loop
versions in :mod:`vadbook.splatting.naive` that the TGS chapter shows and times.

The agreement of :func:`vadbook.splatting.find_peaks` / :func:`tgs_targets` with the loops on
random inputs and edge cases is in tests/test_splatting.py; this file adds the window
parameter, the score-loss wrapper and the degenerate minimum of Eq. (6).
"""
from __future__ import annotations

import pytest
import torch

from vadbook.losses import TGSScoreLoss, tgs_loss, topk_norm_loss
from vadbook.splatting import find_peaks, tgs_targets
from vadbook.splatting.naive import find_peaks_row_loop, tgs_targets_loop

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def smooth_scores(seed: int, B: int, T: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    walk = torch.randn(B, T + 4, generator=gen).cumsum(1)
    smooth = sum(walk[:, i:i + T] for i in range(5)) / 5
    return torch.sigmoid(smooth - smooth.mean(1, keepdim=True))


def a_batch(seed: int = 0, B: int = 8, T: int = 40) -> tuple[torch.Tensor, dict]:
    scores = smooth_scores(seed, B, T).clamp(0.01, 0.99).requires_grad_()
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 30:] = False
    mask[-1, 25:] = False
    label = torch.tensor([0.0] * (B // 2) + [1.0] * (B - B // 2))
    return scores, {"label": label, "mask": mask}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("window", [1, 3, 6])
def test_tgs_targets_window_matches_loop(window, device):
    scores = smooth_scores(3, 6, 50)
    mask = torch.ones(6, 50, dtype=torch.bool)
    mask[2, 41:] = False
    got = tgs_targets(scores.to(device), mask.to(device), 0.05, window=window)
    want = torch.tensor(tgs_targets_loop(scores.tolist(), mask.tolist(), 0.05, window=window), dtype=torch.float64)
    assert got.device.type == device
    assert torch.allclose(got.cpu().double(), want, atol=1e-5)
    info = find_peaks(scores, mask, 0.05, window=window)
    for b in range(6):
        loop = find_peaks_row_loop(scores[b].tolist(), mask[b].tolist(), 0.05, window)
        assert sorted(t for t, v in loop.items() if v[-1]) == info.is_peak[b].nonzero().flatten().tolist()


def test_loops_accept_tensors_and_default_mask():
    s = torch.tensor([0.1, 0.3, 0.9, 0.4, 0.1, 0.1, 0.6, 0.2])
    assert find_peaks_row_loop(s) == find_peaks_row_loop(s.tolist(), [True] * 8)
    assert torch.allclose(torch.tensor(tgs_targets_loop(s[None]), dtype=torch.float64), tgs_targets(s[None]).double(), atol=1e-6)


def test_score_loss_warmup_then_eq6():
    scores, batch = a_batch()
    f = TGSScoreLoss(warmup_steps=5, min_prominence=0.02)
    warm = f(scores, {**batch, "step": 5})
    assert torch.allclose(warm, topk_norm_loss(scores, batch["label"], batch["mask"]))
    full = f(scores, {**batch, "step": 6})
    assert torch.allclose(full, tgs_loss(scores, batch, min_prominence=0.02))
    assert full > warm
    full.backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[4:].abs().sum() > 0
    assert torch.allclose(f(scores, batch), full)          # no step in the batch: past the warm-up


def test_score_loss_tag_and_errors():
    assert TGSScoreLoss().tag == "w20-p0.1-win2-moment-clamp"
    assert TGSScoreLoss(warmup_steps=0, temporal_sigma="width", kind="cauchy").tag == "w0-p0.1-win2-width-clamp-cauchy"
    with pytest.raises(ValueError, match="temporal_sigma"):
        TGSScoreLoss(temporal_sigma="wide")
    with pytest.raises(ValueError, match="window"):
        TGSScoreLoss(window=0)
    with pytest.raises(ValueError, match="norm"):
        TGSScoreLoss(norm="l2")


def test_eq6_has_a_trivial_minimum():
    """Scores of 0 everywhere: no peak, all-zero targets, L_TGS = 0 (what the chapter shows)."""
    _, batch = a_batch()
    zeros = torch.zeros(8, 40)
    assert not find_peaks(zeros, batch["mask"]).is_peak.any()
    assert tgs_targets(zeros, batch["mask"]).sum() == 0
    assert tgs_loss(zeros, batch).item() == pytest.approx(0.0, abs=1e-6)
