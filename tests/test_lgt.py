"""Tests for vadbook.nn.lgt: the batched LGT block against a per-video, per-window loop oracle."""
from __future__ import annotations

import math

import pytest
import torch

from vadbook.nn.lgt import LGTBlock, distance_adjacency, similarity_adjacency


def naive_lgt(block: LGTBlock, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Straight from the papers' text: per video, per window, per (i, j) entry."""
    B, T, d = x.shape
    out = torch.zeros_like(x)
    w = block.local.window
    for b in range(B):
        n = lengths[b]
        # local module: self-attention inside each window of the unpadded video
        xl = torch.zeros(n, d, device=x.device)
        for s in range(0, n, w):
            h = x[b, s:min(s + w, n)][None]
            for layer in block.local.layers:
                h = layer(h)
            xl[s:min(s + w, n)] = h[0]
        # global module: cosine adjacency, threshold, row softmax; distance adjacency
        sim = torch.zeros(n, n, device=x.device)
        dis = torch.zeros(n, n, device=x.device)
        for i in range(n):
            row_s, row_d = [], []
            for j in range(n):
                c = float(xl[i] @ xl[j] / (xl[i].norm() * xl[j].norm()))
                if block.sim_threshold is not None and c <= block.sim_threshold:
                    c = 0.0
                row_s.append(math.exp(c))
                row_d.append(math.exp(-abs(i - j) / block.distance_sigma))
            for j in range(n):
                sim[i, j] = row_s[j] / sum(row_s)
                dis[i, j] = row_d[j] / sum(row_d)
        agg = sim @ xl
        if block.use_distance:
            agg = torch.cat([agg, dis @ xl], dim=-1)
        g = torch.nn.functional.gelu(agg @ block.W.weight.T)
        out[b, :n] = xl + g if block.residual else g
    return out


def _batch(lengths, d, device):
    T = max(lengths)
    x = torch.randn(len(lengths), T, d, device=device)
    mask = torch.arange(T, device=device)[None] < torch.tensor(lengths, device=device)[:, None]
    return x, mask


@pytest.mark.parametrize("use_distance,threshold,residual", [
    (True, 0.7, True), (False, 0.7, True), (True, None, False), (False, 0.0, False)])
def test_matches_naive_oracle(device, use_distance, threshold, residual):
    lengths = [19, 8, 1, 13]  # a multiple of the window, a single snippet, ragged tails
    block = LGTBlock(16, window=4, heads=2, depth=2, sim_threshold=threshold,
                     use_distance=use_distance, distance_sigma=1.5, residual=residual).to(device).eval()
    x, mask = _batch(lengths, 16, device)
    with torch.no_grad():
        fast = block(x, mask)
        slow = naive_lgt(block, x, lengths)
    assert fast.shape == x.shape
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)
    assert torch.all(fast[~mask] == 0)


def test_padding_does_not_leak(device):
    block = LGTBlock(8, window=3, heads=2).to(device).eval()
    x, mask = _batch([7, 10], 8, device)
    x2 = x.clone()
    x2[0, 7:] = 1e3  # garbage in the padding
    with torch.no_grad():
        torch.testing.assert_close(block(x, mask), block(x2, mask))
        # a video alone equals the same video inside a padded batch
        alone = block(x[:1, :7], mask[:1, :7])
        torch.testing.assert_close(alone, block(x, mask)[:1, :7], atol=1e-5, rtol=1e-4)


def test_adjacencies_are_row_stochastic(device):
    x, mask = _batch([5, 9], 6, device)
    for adj in (similarity_adjacency(x, mask), distance_adjacency(mask, 1.0)):
        assert adj.shape == (2, 9, 9)
        torch.testing.assert_close(adj.sum(-1), torch.ones(2, 9, device=device))
        assert torch.all(adj[0, :, 5:] == 0)


def test_gradients_finite_and_default_api(device):
    block = LGTBlock(32).to(device)  # the documented defaults
    assert block.local.window == 8 and block.W.in_features == 64
    x, mask = _batch([20, 3], 32, device)
    x.requires_grad_(True)
    block(x, mask).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert LGTBlock(32, use_distance=False).W.in_features == 32


def test_bad_input():
    block = LGTBlock(8, heads=2)
    with pytest.raises(ValueError, match="x of shape"):
        block(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="mask has shape"):
        block(torch.randn(2, 5, 8), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        LGTBlock(10, heads=4)
    with pytest.raises(ValueError, match="distance_sigma"):
        LGTBlock(8, heads=2, distance_sigma=0)
