"""MIL losses against loop oracles written from the papers' text."""
import math

import pytest
import torch

from vadbook.losses import ranking_loss, topk_bce, topk_mask, topk_mean

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                             reason="no CUDA device"))]


# ---------------------------------------------------------------- oracles (one video at a time)
def oracle_k(t_valid, k):
    return t_valid // 16 + 1 if k is None else min(int(k), t_valid)


def oracle_topk_mean(scores, mask, k=None):
    out = []
    for b in range(scores.shape[0]):
        valid = [float(s) for s, m in zip(scores[b], mask[b]) if m]
        kb = oracle_k(len(valid), k[b] if torch.is_tensor(k) else k)
        out.append(sum(sorted(valid, reverse=True)[:kb]) / kb)
    return torch.tensor(out, dtype=torch.float64)


def clamped_log(p):
    return max(math.log(p), -100.0) if p > 0 else -100.0


def oracle_topk_bce(scores, labels, mask, form, reduction):
    per = []
    for b in range(scores.shape[0]):
        valid = sorted((float(s) for s, m in zip(scores[b], mask[b]) if m), reverse=True)
        kb = len(valid) // 16 + 1
        y = float(labels[b])
        if form == "mean_then_log":
            p = sum(valid[:kb]) / kb
            per.append(-(y * clamped_log(p) + (1 - y) * clamped_log(1 - p)))
        else:  # GS-MoE Eq. (2): mean over the top-k of the per-snippet log-likelihood
            per.append(-sum(clamped_log(s) if y == 1 else clamped_log(1 - s) for s in valid[:kb]) / kb)
    if reduction == "none":
        return torch.tensor(per, dtype=torch.float64)
    if reduction == "mean":
        return torch.tensor(sum(per) / len(per), dtype=torch.float64)
    abn = [l for l, y in zip(per, labels) if y == 1]
    nor = [l for l, y in zip(per, labels) if y == 0]
    return torch.tensor((sum(abn) / len(abn) if abn else 0.0) + (sum(nor) / len(nor) if nor else 0.0),
                        dtype=torch.float64)


def oracle_ranking(scores, labels, mask, lam1, lam2, reduction):
    """Sultani et al.: hinge on the bag maxima for every (abnormal, normal) pair, plus
    smoothness and sparsity of each abnormal bag."""
    vids = [[float(s) for s, m in zip(scores[b], mask[b]) if m] for b in range(scores.shape[0])]
    abn = [v for v, y in zip(vids, labels) if y == 1]
    nor = [v for v, y in zip(vids, labels) if y == 0]
    hinge = sum(max(0.0, 1 - max(a) + max(n)) for a in abn for n in nor)
    smooth = sum(sum((a[t] - a[t + 1]) ** 2 for t in range(len(a) - 1)) for a in abn)
    sparse = sum(sum(a) for a in abn)
    if reduction == "mean":
        hinge, smooth, sparse = hinge / (len(abn) * len(nor)), smooth / len(abn), sparse / len(abn)
    else:
        hinge = hinge / len(nor)
    return hinge + lam1 * smooth + lam2 * sparse


def random_batch(B, T, seed, ties=False, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    if ties:
        scores = torch.randint(0, 3, (B, T), generator=g).float() / 2
    else:
        scores = torch.rand(B, T, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T)[None] < lengths[:, None]
    labels = torch.zeros(B)
    labels[B // 2:] = 1
    return scores.to(device), mask.to(device), labels.to(device)


# ---------------------------------------------------------------- topk_mean / topk_mask
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(6))
def test_topk_mean_matches_oracle(seed, device):
    scores, mask, _ = random_batch(7, 70, seed, ties=seed % 2 == 1, device=device)
    g = torch.Generator().manual_seed(100 + seed)
    k_tensor = torch.randint(1, 80, (7,), generator=g)
    for k in (None, 1, 3, 100, k_tensor):
        got = topk_mean(scores, mask, k).cpu().double()
        torch.testing.assert_close(got, oracle_topk_mean(scores.cpu(), mask.cpu(), k), atol=1e-6, rtol=1e-6)


def test_topk_mean_default_k_and_no_mask():
    scores = torch.arange(32.0)[None] / 32  # T = 32 -> k = 3
    assert torch.allclose(topk_mean(scores), torch.tensor([(31 + 30 + 29) / 3 / 32]))
    assert torch.allclose(topk_mean(scores, None, 32), scores.mean(1))


@pytest.mark.parametrize("seed", range(4))
def test_topk_mask_selects_oracle_indices(seed):
    scores, mask, _ = random_batch(5, 50, seed)
    sel = topk_mask(scores, mask)
    for b in range(5):
        valid = [t for t in range(50) if mask[b, t]]
        kb = len(valid) // 16 + 1
        want = set(sorted(valid, key=lambda t: -float(scores[b, t]))[:kb])
        assert set(torch.nonzero(sel[b]).flatten().tolist()) == want


def test_topk_mask_ties_prefer_earlier_snippet():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.9, 0.1]])
    assert topk_mask(scores, None, 3).tolist() == [[True, True, False, True, False]]


def test_padded_snippets_never_selected_and_get_no_gradient():
    scores = torch.tensor([[0.1, 0.2, 0.9, 0.99], [0.3, 0.1, 0.2, 0.4]], requires_grad=True)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    y = topk_mean(scores, mask, 2)
    torch.testing.assert_close(y, torch.tensor([0.15, 0.35]))
    y.sum().backward()
    torch.testing.assert_close(scores.grad, torch.tensor([[0.5, 0.5, 0, 0], [0.5, 0, 0, 0.5]]))


# ---------------------------------------------------------------- topk_bce
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("form", ["mean_then_log", "log_then_mean"])
@pytest.mark.parametrize("reduction", ["mean", "balanced", "none"])
def test_topk_bce_matches_oracle(form, reduction, device):
    for seed in range(3):
        scores, mask, labels = random_batch(6, 40, seed, ties=seed == 2, device=device)
        scores = scores.clamp(0, 1)
        got = topk_bce(scores, labels, mask, form=form, reduction=reduction).cpu().double()
        want = oracle_topk_bce(scores.cpu(), labels.cpu(), mask.cpu(), form, reduction)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_topk_bce_extreme_scores_finite_and_forms_ordered():
    scores = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0.0, 1.0])
    for form in ("mean_then_log", "log_then_mean"):
        loss = topk_bce(scores, labels, form=form)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(scores.grad).all()
    # Jensen: -log(mean p) <= mean(-log p) for an abnormal video
    s = torch.tensor([[0.9, 0.2, 0.5] + [0.0] * 29])
    y = torch.tensor([1.0])
    k = torch.tensor([3])
    assert topk_bce(s, y, None, k, "mean_then_log") <= topk_bce(s, y, None, k, "log_then_mean")


def test_topk_bce_gradient_lowers_loss():
    scores, mask, labels = random_batch(4, 30, 0)
    logits = torch.logit(scores.clamp(0.05, 0.95)).requires_grad_()
    loss = topk_bce(torch.sigmoid(logits), labels, mask)
    loss.backward()
    with torch.no_grad():
        assert topk_bce(torch.sigmoid(logits - 0.5 * logits.grad), labels, mask) < loss


# ---------------------------------------------------------------- ranking loss
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_ranking_loss_matches_oracle(reduction, device):
    for seed in range(4):
        scores, mask, labels = random_batch(6, 33, seed, device=device)
        got = ranking_loss(scores, labels, mask, 0.3, 0.2, reduction=reduction).cpu().double()
        want = oracle_ranking(scores.cpu(), labels.cpu(), mask.cpu(), 0.3, 0.2, reduction)
        assert abs(float(got) - want) < 1e-5


def test_ranking_loss_unbalanced_and_interleaved_batch():
    scores, mask, _ = random_batch(5, 20, 3)
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    got = ranking_loss(scores, labels, mask, 8e-5, 8e-5)
    assert abs(float(got) - oracle_ranking(scores, labels, mask, 8e-5, 8e-5, "mean")) < 1e-6


def test_ranking_loss_gradient_only_on_valid_snippets():
    scores, mask, labels = random_batch(4, 20, 1)
    scores.requires_grad_()
    ranking_loss(scores, labels, mask, 1.0, 1.0).backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[~mask] == 0).all()
    assert (scores.grad[labels == 1].abs().sum(1) > 0).all()


# ---------------------------------------------------------------- bad input
def test_bad_input_raises_value_error():
    s = torch.rand(2, 5)
    y = torch.tensor([0.0, 1.0])
    with pytest.raises(ValueError, match="mask has shape"):
        topk_mean(s, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        topk_mean(s, torch.ones(2, 5))
    with pytest.raises(ValueError, match="no valid snippet"):
        topk_mean(s, torch.tensor([[True] * 5, [False] * 5]))
    with pytest.raises(ValueError, match="k must be >= 1"):
        topk_mean(s, None, 0)
    with pytest.raises(ValueError, match="k has shape"):
        topk_mean(s, None, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="probabilities"):
        topk_bce(s * 3, y)
    with pytest.raises(ValueError, match="probabilities"):
        topk_bce(torch.full((2, 5), float("nan")), y)
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        topk_bce(s, torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="B = 2"):
        topk_bce(s, torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="form"):
        topk_bce(s, y, form="max")
    with pytest.raises(ValueError, match="0 normal"):
        ranking_loss(s, torch.ones(2))
