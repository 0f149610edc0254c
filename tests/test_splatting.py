"""Tests of vadbook.splatting and vadbook.losses.splat against naive loop oracles.

The ``naive_*`` functions are written straight from the papers' text (GS-MoE Sec. 3.1,
GlanceVAD Alg. 1 and Eq. (3)-(6)) with the readings stated in the package docstrings, one
video and one snippet at a time, in float64 Python arithmetic.
"""
from __future__ import annotations

import math

from vadbook.splatting.naive_glance import kernel_value, normalise_row

import pytest
import torch

from vadbook.losses.mil import topk_mask, topk_mean
from vadbook.losses.splat import glance_loss, glance_total_loss, normal_mil_loss, tgs_loss, topk_norm_loss
from vadbook.splatting import (find_peaks, glance_indices, glance_mask, glance_sigma, glance_targets, kernel,
                               mine_glance_kernels, mixture, normalise, perturb_glances, render, tgs_kernels,
                               tgs_targets)
from vadbook.splatting.naive_glance import glance_targets_loop as naive_glance_targets
from vadbook.splatting.naive_glance import mine_row_loop as naive_mine_row
from vadbook.splatting.naive import find_peaks_row_loop as naive_find_peaks_row
from vadbook.splatting.naive import tgs_targets_loop as naive_tgs_targets

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


# ----------------------------------------------------------------------------- oracles

# The teaching loops of vadbook.splatting.naive_glance are the oracles' kernel and normaliser.
naive_kernel = kernel_value
naive_normalise = normalise_row


def naive_render(centres, sigma, height, gate, kind, valid, reduce):
    B, T = len(centres), len(centres[0])
    out = [[0.0] * T for _ in range(B)]
    for b in range(B):
        for t in range(T):
            if not valid[b][t]:
                continue
            vals = []
            for j in range(T):
                if centres[b][j] and valid[b][j]:
                    h = height[b][j] if height is not None else 1.0
                    g = gate[b][j][t] if gate is not None else 1.0
                    vals.append(h * g * naive_kernel(t - j, sigma[b][j], kind))
            if vals:
                out[b][t] = sum(vals) if reduce == "sum" else max(vals)
    return out


# ----------------------------------------------------------------------------- random inputs

def make_scores(gen, B, T, style):
    if style == "uniform":
        return torch.rand(B, T, generator=gen)
    if style == "dyadic":                         # many exact ties and plateaus
        return torch.randint(0, 9, (B, T), generator=gen).float() / 8
    noise = torch.randn(B, T + 4, generator=gen).cumsum(1)   # smooth bumps
    smooth = (noise[:, :-4] + noise[:, 1:-3] + noise[:, 2:-2] + noise[:, 3:-1] + noise[:, 4:]) / 5
    return torch.sigmoid(smooth - smooth.mean(1, keepdim=True))


def make_mask(gen, B, T, holes=False):
    lengths = torch.randint(0, T + 1, (B,), generator=gen)
    lengths[0] = T                                 # one full row, and some rows may be empty
    mask = torch.arange(T)[None, :] < lengths[:, None]
    if holes:
        mask &= torch.rand(B, T, generator=gen) > 0.1
    return mask


CASES = [(seed, style) for seed in range(4) for style in ("uniform", "dyadic", "smooth")]


# ----------------------------------------------------------------------------- kernels

def test_kernel_values_and_impulse():
    d = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert torch.allclose(kernel(d, 1.0, "normal")[3], torch.tensor(math.exp(-0.5)))
    assert torch.allclose(kernel(d, 1.0, "cauchy")[3], torch.tensor(0.5))
    assert torch.allclose(kernel(d, 1.0, "laplace")[3], torch.tensor(math.exp(-1)))
    for kind in ("normal", "cauchy", "laplace"):
        k = kernel(d, 1.5, kind)
        assert torch.allclose(k, k.flip(0)) and k[2] == 1 and (k <= 1).all()
        assert kernel(d, 0.0, kind).tolist() == [0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="kind"):
        kernel(d, 1.0, "gauss")
    with pytest.raises(ValueError, match=">= 0"):
        kernel(d, -1.0)


def test_kernel_gradients_finite_at_zero_width():
    sigma = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)
    mu = torch.tensor([0.3, 0.3, 0.3], requires_grad=True)
    kernel(torch.tensor([1.0, 1.0, 1.0]) - mu, sigma).sum().backward()
    assert torch.isfinite(sigma.grad).all() and torch.isfinite(mu.grad).all()
    assert sigma.grad[0] == 0 and sigma.grad[1] > 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(3))
def test_render_matches_loops(seed, device):
    gen = torch.Generator().manual_seed(seed)
    B, T = 5, 23
    centres = torch.rand(B, T, generator=gen) < 0.2
    sigma = torch.rand(B, T, generator=gen) * 4
    sigma[:, ::5] = 0
    height = torch.rand(B, T, generator=gen)
    gate = (torch.rand(B, T, T, generator=gen) < 0.7).float()
    mask = make_mask(gen, B, T, holes=True)
    for kind in ("normal", "cauchy", "laplace"):
        for reduce in ("sum", "max"):
            for h, g in ((None, None), (height, gate)):
                got = render(centres.to(device), sigma.to(device), None if h is None else h.to(device),
                             None if g is None else g.to(device), kind, mask.to(device), reduce)
                want = naive_render(centres.tolist(), sigma.tolist(), None if h is None else h.tolist(),
                                    None if g is None else g.tolist(), kind, mask.tolist(), reduce)
                assert torch.allclose(got.cpu().double(), torch.tensor(want, dtype=torch.float64), atol=1e-5)
    per = render(centres, sigma, height, gate, mask=mask, reduce="none")
    assert per.shape == (B, T, T) and torch.allclose(per.sum(1), render(centres, sigma, height, gate, mask=mask))


def test_mixture_is_lec_vad_eq12_and_differentiable():
    gen = torch.Generator().manual_seed(0)
    B, T, C, beta = 2, 9, 3, 0.7
    mu = torch.rand(B, T, C, generator=gen).requires_grad_()
    sig = (torch.rand(B, T, C, generator=gen) + 0.1).requires_grad_()
    alpha = torch.rand(B, T, C, generator=gen)
    pos = (torch.arange(1, T + 1).float() / T)[None, :, None].expand(B, T, 1)
    got = mixture(pos, mu, sig / math.sqrt(2 * beta), alpha)[..., 0]
    want = (alpha * torch.exp(-beta * (pos - mu) ** 2 / sig ** 2)).sum(-1)
    assert torch.allclose(got, want, atol=1e-6)
    got.sum().backward()
    assert torch.isfinite(mu.grad).all() and mu.grad.abs().sum() > 0 and sig.grad.abs().sum() > 0


def test_normalise_modes():
    x = torch.tensor([[0.5, 2.0, 1.0, 9.0], [0.0, 0.0, 0.0, 0.0], [0.4, 0.4, 0.4, 0.4]])
    m = torch.tensor([[True, True, True, False]] * 3)
    assert normalise(x, m, "clamp").tolist()[0] == [0.5, 1.0, 1.0, 0.0]
    assert torch.allclose(normalise(x, m, "max")[0], torch.tensor([0.25, 1.0, 0.5, 0.0]))
    assert torch.allclose(normalise(x, m, "minmax")[0], torch.tensor([0.0, 1.0, 1 / 3, 0.0]))
    for how in ("clamp", "max", "minmax", "none"):
        assert normalise(x, m, how)[1].tolist() == [0, 0, 0, 0]
    assert normalise(x, m, "minmax")[2].tolist() == [1, 1, 1, 0]
    with pytest.raises(ValueError, match="norm"):
        normalise(x, m, "l2")


# ----------------------------------------------------------------------------- peaks and TGS

def peak_table(info, b):
    return {t: (float(info.prominence[b, t]), int(info.rise[b, t]), int(info.fall[b, t]), int(info.width[b, t]),
                int(info.left[b, t]), int(info.right[b, t]), bool(info.is_peak[b, t]))
            for t in torch.nonzero(info.is_local_max[b]).flatten().tolist()}


def assert_peaks_match(scores, mask, min_prominence=0.15, window=2, min_height=0.0):
    info = find_peaks(scores, mask, min_prominence, window, min_height)
    for b in range(scores.shape[0]):
        got = peak_table(info, b)
        want = naive_find_peaks_row(scores[b].tolist(), mask[b].tolist(), min_prominence, window, min_height)
        assert got.keys() == want.keys(), (b, scores[b], mask[b])
        for t in want:
            assert math.isclose(got[t][0], want[t][0], abs_tol=1e-6) and got[t][1:] == want[t][1:], (b, t)


@pytest.mark.parametrize("seed,style", CASES)
def test_find_peaks_matches_oracle(seed, style):
    gen = torch.Generator().manual_seed(seed)
    B, T = 8, int(torch.randint(1, 65, (1,), generator=gen))
    scores = make_scores(gen, B, T, style)
    assert_peaks_match(scores, make_mask(gen, B, T), 0.15)
    assert_peaks_match(scores, make_mask(gen, B, T, holes=True), 0.05, window=3, min_height=0.3)
    assert_peaks_match(scores, make_mask(gen, B, T), 0.2, window=T)


def test_find_peaks_edge_cases():
    one = find_peaks(torch.tensor([[0.7]]), min_prominence=0.1)
    assert one.is_local_max.tolist() == [[True]] and one.is_peak.tolist() == [[False]] and one.width.tolist() == [[0]]
    assert find_peaks(torch.tensor([[0.7]]), min_prominence=0.0).is_peak.tolist() == [[True]]
    const = find_peaks(torch.full((2, 7), 0.4))
    assert not const.is_peak.any() and const.is_local_max.sum() == 2 and const.is_local_max[0, 3]
    # plateau of 4 equal scores: one peak at (start + end) // 2, window widened by the plateau
    p = find_peaks(torch.tensor([[0.0, 0.25, 0.5, 0.75, 0.75, 0.75, 0.75, 0.5, 0.0]]))
    assert p.is_peak.nonzero().tolist() == [[0, 4]]
    assert (p.rise[0, 4], p.fall[0, 4], p.width[0, 4], p.left[0, 4], p.right[0, 4]) == (3, 2, 2, 3, 4)
    assert math.isclose(float(p.prominence[0, 4]), 0.75 - max(0.25, 0.0))
    # peaks on the first and last snippets are judged by their inner side; W from that side
    edge = find_peaks(torch.tensor([[0.9, 0.6, 0.2, 0.1, 0.3, 0.8]]))
    assert edge.is_peak.nonzero()[:, 1].tolist() == [0, 5]
    assert edge.width[0].tolist() == [3, 0, 0, 0, 0, 2]
    assert math.isclose(float(edge.prominence[0, 0]), 0.7, rel_tol=1e-6)
    # masked tail: huge values there are ignored, the last valid snippet can be a peak
    s = torch.tensor([[0.1, 0.2, 0.6, 5.0, float("nan")]])
    m = torch.tensor([[True, True, True, False, False]])
    tail = find_peaks(s, m)
    assert tail.is_peak.tolist() == [[False, False, True, False, False]] and tail.width[0, 2] == 2
    empty = find_peaks(s, torch.zeros_like(m))
    assert not empty.is_local_max.any()
    # prominence counts only two snippets per side: a slow rise is less prominent than a sharp one
    slow = find_peaks(torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.4, 0.3, 0.2, 0.1]]), min_prominence=0.25)
    assert not slow.is_peak.any() and math.isclose(float(slow.prominence[0, 4]), 0.2, rel_tol=1e-5)
    assert slow.width[0, 4] == 4
    # a wider window: SciPy's rule, each side's minimum stops at a score above the peak
    s = torch.tensor([[0.3, 0.9, 0.2, 0.5, 0.4, 0.45, 0.1]])
    assert math.isclose(float(find_peaks(s, window=2).prominence[0, 3]), 0.5 - 0.4, rel_tol=1e-6)
    assert math.isclose(float(find_peaks(s, window=6).prominence[0, 3]), 0.5 - 0.2, rel_tol=1e-6)


def test_prominence_agrees_with_scipy():
    signal = pytest.importorskip("scipy.signal")
    gen = torch.Generator().manual_seed(11)
    x = torch.rand(20, 50, generator=gen)
    for w in (2, 3, 10):
        info = find_peaks(x, window=w, min_prominence=0.0)
        for b in range(20):
            row = x[b].numpy()
            pk, _ = signal.find_peaks(row)              # interior, strict local maxima
            prom = signal.peak_prominences(row, pk, wlen=2 * w + 1)[0]
            assert info.is_local_max[b, 1:-1].nonzero().flatten().add(1).tolist() == pk.tolist()
            assert torch.allclose(info.prominence[b, pk], torch.from_numpy(prom).float(), atol=1e-6)


@pytest.mark.parametrize("seed,style", [(s, st) for s in range(3) for st in ("uniform", "smooth")])
def test_tgs_targets_match_oracle(seed, style):
    gen = torch.Generator().manual_seed(100 + seed)
    B, T = 8, (17, 40, 64)[seed]
    scores = make_scores(gen, B, T, style)
    mask = make_mask(gen, B, T, holes=seed == 2)
    for temporal_sigma, norm, kind in [("moment", "clamp", "normal"), ("width", "max", "cauchy"),
                                       ("score", "minmax", "laplace"), ("moment", "none", "normal")]:
        got = tgs_targets(scores, mask, 0.05, temporal_sigma=temporal_sigma, norm=norm, kind=kind)
        want = naive_tgs_targets(scores.tolist(), mask.tolist(), 0.05, temporal_sigma, norm, kind)
        assert torch.allclose(got.double(), torch.tensor(want, dtype=torch.float64), atol=1e-5), temporal_sigma
        k = tgs_kernels(scores, mask, 0.05, temporal_sigma=temporal_sigma)      # the dense O(B T^2) route
        dense = normalise(render(k.peaks.is_peak, k.time_sigma, gate=k.gate, kind=kind, mask=mask), mask, norm)
        assert torch.allclose(got, dense, atol=1e-5)


def test_tgs_targets_properties():
    gen = torch.Generator().manual_seed(7)
    scores = make_scores(gen, 6, 50, "smooth").requires_grad_()
    mask = make_mask(gen, 6, 50)
    y = tgs_targets(scores, mask, 0.02)
    assert not y.requires_grad and torch.isfinite(y).all() and (y >= 0).all() and (y <= 1).all()
    assert (y[~mask] == 0).all()
    info = find_peaks(scores, mask, 0.02)
    assert (y[info.is_peak] == 1).all()                       # f_i(P_i) = 1, Eq. (3)-(4)
    assert tgs_targets(torch.full((2, 9), 0.3)).sum() == 0     # constant scores: no peak, no target
    assert tgs_targets(torch.tensor([[0.2, 0.9]])).tolist() == [[0.0, 1.0]]


def test_all_masked_rows_give_zero_targets_and_losses_reject_them():
    scores = torch.rand(3, 12)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1] = False
    glances = torch.zeros(3, 12, dtype=torch.bool)
    glances[[0, 2], 4] = True
    for y in (tgs_targets(scores, mask, 0.0), glance_targets(scores, glances, 0.9, 0.1, mask=mask),
              glance_targets(scores, glances, 0.9, 0.1, mask=mask, reduce="sum")):
        assert y[1].abs().sum() == 0 and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="no valid snippet"):
        tgs_loss(scores, torch.tensor([0.0, 1.0, 1.0]), mask)


def test_tgs_long_events_get_long_kernels():
    t = torch.arange(60).float()
    bump = lambda c, w: 0.1 + 0.8 * torch.exp(-0.5 * ((t - c) / w) ** 2)  # noqa: E731
    scores = torch.stack([bump(30, 2.0), bump(30, 8.0)])
    k = tgs_kernels(scores, min_prominence=0.01)
    sig = k.time_sigma[:, 30]
    assert k.peaks.is_peak[:, 30].all() and sig[1] > 2 * sig[0]
    y = tgs_targets(scores, min_prominence=0.01)
    assert y[1].sum() > 2 * y[0].sum()
    literal = tgs_targets(scores, min_prominence=0.01, temporal_sigma="score")
    assert literal[1].sum() < 1.01                              # Eq. (4) read literally: one snippet


def test_tgs_plateau_kernel_covers_plateau():
    s = torch.tensor([[0.1, 0.3, 0.8, 0.8, 0.8, 0.3, 0.1]])
    y = tgs_targets(s)
    assert y[0, 2:5].min() > 0.5 and y[0, 3] == 1 and y[0, 0] == 0


# ----------------------------------------------------------------------------- glances

def random_glances(gen, mask, p=0.12):
    return (torch.rand(mask.shape, generator=gen) < p) & mask


@pytest.mark.parametrize("seed,style", CASES)
def test_mining_matches_algorithm_1(seed, style):
    gen = torch.Generator().manual_seed(200 + seed)
    B, T = 8, (31, 1, 50, 64)[seed]
    scores = make_scores(gen, B, T, style)
    mask = make_mask(gen, B, T, holes=seed % 2 == 1)
    glances = random_glances(gen, mask)
    for alpha, dynamic in ((0.9, True), (0.5, True), (0.75, True), (0.5, False)):
        got = mine_glance_kernels(scores, glances, alpha, mask, dynamic)
        for b in range(B):
            G = glances[b].nonzero().flatten().tolist()
            want = naive_mine_row(scores[b].tolist(), G, mask[b].tolist(), alpha, dynamic)
            assert set(got[b].nonzero().flatten().tolist()) == want, (alpha, dynamic, b)


def test_mining_edge_cases():
    A = torch.tensor([[0.9, 0.95, 0.2, 0.5, 0.5, 0.5, 0.6, 0.2, 0.9, 0.9]])
    g = torch.zeros_like(A, dtype=torch.bool)
    g[0, [0, 5]] = True                                         # glance on the first snippet
    mined = mine_glance_kernels(A, g, alpha=1.0)
    assert mined[0].nonzero().flatten().tolist() == [0, 1, 3, 4, 5, 6]   # equal scores (0.5) count
    g2 = torch.zeros_like(g)
    g2[0, 8] = True                                             # the walk reaches the last snippet
    assert mine_glance_kernels(A, g2, 0.9)[0].nonzero().flatten().tolist() == [8, 9]
    g3 = torch.zeros_like(g)
    g3[0, [3, 4]] = True                                        # adjacent glances
    assert mine_glance_kernels(A, g3, 0.9)[0].nonzero().flatten().tolist() == [3, 4, 5, 6]
    m = torch.ones_like(g)
    m[0, 9] = False                                             # masked tail stops the walk
    assert mine_glance_kernels(A, g2, 0.9, m)[0].nonzero().flatten().tolist() == [8]
    assert not mine_glance_kernels(A, torch.zeros_like(g)).any()
    fixed = mine_glance_kernels(A, g2, 0.85, dynamic=False)     # fixed threshold 0.85
    assert fixed[0].nonzero().flatten().tolist() == [8, 9]


def test_glance_formats_and_errors():
    g = torch.tensor([[False, True, False, True], [False] * 4])
    idx = glance_indices(g)
    assert idx.tolist() == [[1, 3], [-1, -1]]
    assert torch.equal(glance_mask(idx, 4), g)
    scores = torch.rand(2, 4)
    assert torch.equal(mine_glance_kernels(scores, idx), mine_glance_kernels(scores, g))
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        glance_mask(torch.tensor([[4]]), 4)
    with pytest.raises(ValueError, match="masked"):
        mine_glance_kernels(scores, g, mask=torch.tensor([[True, True, True, False]] * 2))
    with pytest.raises(ValueError, match="T = 5"):
        mine_glance_kernels(torch.rand(2, 5), g)


@pytest.mark.parametrize("seed", range(4))
def test_glance_targets_match_oracle(seed):
    gen = torch.Generator().manual_seed(300 + seed)
    B, T = 8, int(torch.randint(1, 65, (1,), generator=gen))
    scores = make_scores(gen, B, T, ("uniform", "smooth")[seed % 2])
    mask = make_mask(gen, B, T)
    glances = random_glances(gen, mask)
    settings = [("normal", "max", "max", 0.1, True), ("cauchy", "sum", "max", 0.2, True),
                ("laplace", "max", "minmax", 0.05, False), ("normal", "sum", "clamp", 0.0, True)]
    for kind, reduce, norm, sigma, mine in settings:
        got = glance_targets(scores, glances, 0.8, sigma, kind, mask, mine=mine, reduce=reduce, norm=norm)
        want = naive_glance_targets(scores.tolist(), glances.tolist(), mask.tolist(), 0.8, sigma, kind,
                                    reduce, norm, mine)
        assert torch.allclose(got.double(), torch.tensor(want, dtype=torch.float64), atol=1e-5), (kind, reduce)
        if reduce == "max":                                      # the O(B T) route equals the dense one
            centres = mine_glance_kernels(scores, glances, 0.8, mask) if mine else glances
            dense = render(centres, glance_sigma(sigma, mask), kind=kind, mask=mask, reduce="max")
            assert torch.allclose(got, normalise(dense, mask, norm), atol=1e-6)
        assert (got >= 0).all() and (got <= 1).all() and torch.isfinite(got).all()


def test_glance_targets_properties():
    s = torch.tensor([[0.1, 0.2, 0.8, 0.9, 0.85, 0.3, 0.1, 0.1, 0.1, 0.6, 0.1]]).requires_grad_()
    g = torch.zeros(1, 11, dtype=torch.bool)
    g[0, [3, 9]] = True
    y = glance_targets(s, g, 0.9, sigma=0.0)                    # sigma 0: binary labels
    assert not y.requires_grad and y[0].nonzero().flatten().tolist() == [3, 4, 9]
    y = glance_targets(s, g, 0.9, sigma=0.1)
    assert (y[0, [3, 4, 9]] == 1).all() and y[0, 6] < 0.05
    summed = glance_targets(s, g, 0.9, sigma=0.3, reduce="sum")  # Eq. (4) as written
    assert summed[0, 9] < 1                                     # the lone glance is dwarfed
    assert glance_sigma(0.1, torch.ones(2, 201, dtype=torch.bool)).tolist() == pytest.approx([10.0, 10.0])
    assert glance_sigma(torch.tensor([1.0, 2.0]), torch.ones(2, 5, dtype=torch.bool), "snippets").tolist() == [1, 2]


def test_perturb_glances_stays_in_video():
    gen = torch.Generator().manual_seed(0)
    mask = make_mask(gen, 8, 40)
    mask[:, 0] = True
    g = random_glances(gen, mask, 0.2)
    g[:, 0] = True
    idx = glance_indices(g)
    for m in (0, 1, 5, 100):
        moved = perturb_glances(idx, m, torch.Generator().manual_seed(1), mask)
        assert moved.shape == idx.shape and ((moved >= 0) == (idx >= 0)).all()
        assert ((moved - idx).abs() <= m).all() or m == 100
        assert mask.gather(1, moved.clamp_min(0))[idx >= 0].all()
        if m == 0:
            assert torch.equal(moved, idx)
    again = perturb_glances(g, 5, torch.Generator().manual_seed(3), mask)
    assert again.dtype == torch.bool
    assert torch.equal(again, perturb_glances(g, 5, torch.Generator().manual_seed(3), mask))
    assert not (again & ~mask).any()
    with pytest.raises(ValueError, match="mask"):
        perturb_glances(idx, 2)


# ----------------------------------------------------------------------------- losses

def batch_for(gen, B=6, T=30):
    scores = make_scores(gen, B, T, "smooth").clamp(0.01, 0.99).requires_grad_()
    mask = make_mask(gen, B, T)
    mask[:, 0] = True
    labels = torch.tensor([0.0] * (B // 2) + [1.0] * (B - B // 2))
    glances = random_glances(gen, mask, 0.15) & (labels[:, None] == 1)
    return scores, {"label": labels, "mask": mask, "glances": glances}


def test_tgs_loss_is_eq6():
    scores, batch = batch_for(torch.Generator().manual_seed(0))
    labels, mask = batch["label"], batch["mask"]
    loss, parts = tgs_loss(scores, batch, return_parts=True, min_prominence=0.02)
    sel = topk_mask(scores, mask)
    nll = -torch.log(1 - scores)
    norm_part = torch.stack([nll[b][sel[b]].mean() for b in range(6) if labels[b] == 0]).mean()
    y = tgs_targets(scores, mask, 0.02)
    bce = torch.stack([torch.nn.functional.binary_cross_entropy(scores[b][mask[b]], y[b][mask[b]])
                       for b in range(6) if labels[b] == 1]).mean()
    assert torch.allclose(loss, norm_part + bce, atol=1e-5) and torch.allclose(parts["topk_norm"], norm_part, atol=1e-5)
    assert torch.allclose(topk_norm_loss(scores, labels, mask), norm_part, atol=1e-5)
    assert torch.allclose(tgs_loss(scores, labels, mask, warmup=True), norm_part, atol=1e-5)
    with_normals = tgs_loss(scores, batch, normal_bce=True, min_prominence=0.02)
    assert not torch.allclose(with_normals, loss)
    loss.backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[labels == 1].abs().sum() > 0


def test_glance_losses_are_eq7_eq8():
    scores, batch = batch_for(torch.Generator().manual_seed(1))
    labels, mask, g = batch["label"], batch["mask"], batch["glances"]
    g[3:, 5] = mask[3:, 5]
    g[3, :] = False                                              # an abnormal video with a weak label only
    l_abn = glance_loss(scores, batch, alpha=0.9, sigma=0.1)
    y = glance_targets(scores, g, 0.9, 0.1, mask=mask)
    want = torch.stack([torch.nn.functional.binary_cross_entropy(scores[b][mask[b]], y[b][mask[b]])
                        for b in range(6) if g[b].any()]).mean()
    assert torch.allclose(l_abn, want, atol=1e-6)
    l_nor = normal_mil_loss(scores, labels, mask)
    want_nor = torch.stack([-torch.log(1 - topk_mean(scores, mask)[b]) for b in range(3)]).mean()
    assert torch.allclose(l_nor, want_nor, atol=1e-6)
    total, parts = glance_total_loss(scores, batch, torch.tensor(0.25), alpha=0.9, sigma=0.1)
    assert torch.allclose(total, 0.25 + l_abn + l_nor, atol=1e-6) and set(parts) == {"base", "abn", "nor"}
    total.backward()
    assert torch.isfinite(scores.grad).all()
    none = {"label": labels, "mask": mask, "glances": torch.zeros_like(g)}
    assert glance_loss(scores, none) == 0


# ----------------------------------------------------------------------------- bad input, devices

def test_bad_input_raises():
    s = torch.rand(2, 5)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        find_peaks(s, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        tgs_targets(torch.tensor([[0.1, float("nan")]]))
    with pytest.raises(ValueError, match="bool"):
        tgs_targets(s, torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        find_peaks(torch.rand(5))
    with pytest.raises(ValueError, match="temporal_sigma"):
        tgs_targets(s, temporal_sigma="wide")
    with pytest.raises(ValueError, match="T = 0"):
        find_peaks(torch.rand(2, 0))


@needs_cuda
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(5)
    scores = make_scores(gen, 8, 64, "smooth")
    mask = make_mask(gen, 8, 64)
    glances = random_glances(gen, mask)
    cpu = (tgs_targets(scores, mask, 0.02), glance_targets(scores, glances, 0.9, 0.1, mask=mask),
           find_peaks(scores, mask, 0.02).is_peak)
    dev = (tgs_targets(scores.cuda(), mask.cuda(), 0.02), glance_targets(scores.cuda(), glances.cuda(), 0.9, 0.1,
                                                                         mask=mask.cuda()),
           find_peaks(scores.cuda(), mask.cuda(), 0.02).is_peak)
    for c, d in zip(cpu, dev):
        assert d.device.type == "cuda" and torch.allclose(c.float(), d.cpu().float(), atol=1e-5)
    moved = perturb_glances(glances.cuda(), 3, torch.Generator().manual_seed(0), mask.cuda())
    assert moved.device.type == "cuda"
