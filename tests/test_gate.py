"""The GS-MoE gate (stage 3) against a per-video oracle, and the pipeline glue (vadbook.gsmoe)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vadbook.data.video import Benchmark, Video
from vadbook.gsmoe import MoE, MoEConfig, class_assignment, cluster_assignment, with_expert_scores
from vadbook.nn.gate import Gate, GateConfig

E, FD, DIM = 6, 10, 16


def _gate(device, use_features=True) -> Gate:
    return Gate(GateConfig(n_experts=E, feat_dim=FD, dim=DIM, dropout=0.0, use_features=use_features)).to(device).eval()


def _batch(device, B=3, T=11):
    s = torch.rand(B, T, E, device=device)
    f = torch.randn(B, T, FD, device=device)
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    mask[0, 7:] = False
    mask[2, 3:] = False
    return s, f, mask


def _mha(mod, q, kv):
    """nn.MultiheadAttention written out: per-head softmax(q k^T / sqrt(dh)) v, then out_proj."""
    d, H = q.shape[-1], mod.num_heads
    dh = d // H
    W, b = mod.in_proj_weight, mod.in_proj_bias
    Q, K, V = q @ W[:d].T + b[:d], kv @ W[d:2 * d].T + b[d:2 * d], kv @ W[2 * d:].T + b[2 * d:]
    heads = [torch.softmax(Q[:, i * dh:(i + 1) * dh] @ K[:, i * dh:(i + 1) * dh].T / math.sqrt(dh), -1)
             @ V[:, i * dh:(i + 1) * dh] for i in range(H)]
    return torch.cat(heads, -1) @ mod.out_proj.weight.T + mod.out_proj.bias


def _oracle(g: Gate, s, f, mask):
    """The gate from the text, one video (valid snippets only) at a time."""
    out = torch.zeros(s.shape[:2], device=s.device)
    for b in range(s.shape[0]):
        T_b = int(mask[b].sum())
        a = g.score_proj(s[b, :T_b])                                # (a) score refinement
        if g.config.use_features:
            x = g.feat_proj(f[b, :T_b])
            ca, cf = g.experts_to_feats, g.feats_to_experts         # (b) both directions
            a2 = a + _mha(ca.attn, ca.norm_q(a), ca.norm_kv(x))
            x2 = x + _mha(cf.attn, cf.norm_q(x), cf.norm_kv(a))
            a = g.fuse(torch.cat([a2, x2], -1))
        n = g.block.norm_q(a)                                        # (c) transformer block
        h = a + _mha(g.block.attn, n, n)
        h = h + g.ff(g.norm_ff(h))
        out[b, :T_b] = torch.sigmoid(g.mlp(h)[:, 0])                 # four-layer MLP
    return out


@pytest.mark.parametrize("use_features", [True, False])
def test_gate_equals_per_video_oracle(device, use_features):
    g = _gate(device, use_features)
    s, f, mask = _batch(device)
    got = g(s, f if use_features else None, mask)
    assert got["scores"].shape == (3, 11) and got["hidden"].shape == (3, 11, DIM)
    assert (got["scores"][~mask] == 0).all()
    torch.testing.assert_close(got["scores"], _oracle(g, s, f, mask), atol=1e-5, rtol=1e-4)


def test_gate_padding_invariance(device):
    g = _gate(device)
    s, f, mask = _batch(device)
    pad = torch.zeros(3, 4, dtype=torch.bool, device=device)
    a = g(s, f, mask)["scores"]
    b = g(torch.cat([s, torch.rand(3, 4, E, device=device)], 1), torch.cat([f, 50 * torch.randn(3, 4, FD, device=device)], 1),
          torch.cat([mask, pad], 1))["scores"][:, :11]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_gate_uses_features_only_when_asked(device):
    s, f, mask = _batch(device)
    g = _gate(device, use_features=True)
    assert not torch.allclose(g(s, f, mask)["scores"], g(s, f + 1, mask)["scores"])
    g0 = _gate(device, use_features=False)
    torch.testing.assert_close(g0(s, None, mask)["scores"], g0(s, f, mask)["scores"])


def test_gate_gradients_reach_every_parameter(device):
    g = _gate(device).train()
    s, f, mask = _batch(device)
    s.requires_grad_(True)
    g(s, f, mask)["scores"].sum().backward()
    for name, p in g.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert (s.grad[~mask] == 0).all() and s.grad[mask].abs().sum() > 0


def test_gate_bad_inputs():
    g = Gate(GateConfig(n_experts=E, feat_dim=FD, dim=DIM))
    s, f, mask = _batch("cpu")
    with pytest.raises(ValueError, match="expert_scores of shape"):
        g(s[..., :3], f, mask)
    with pytest.raises(ValueError, match="features of shape"):
        g(s, None, mask)
    with pytest.raises(ValueError, match="divisible"):
        Gate(GateConfig(dim=18, heads=4))


# ----- pipeline glue -----------------------------------------------------------------------

def _tiny_bench(rng, d=8):
    """Two anomaly classes whose task-aware features point in opposite directions."""
    def video(i, cls):
        T = int(rng.integers(12, 30))
        x = rng.normal(size=(T, d + 1)).astype(np.float32)
        x[:, -1] = rng.uniform(size=T)                         # the coarse-score channel
        events = []
        if cls:
            x[:, :d] += (4.0 if cls == "A" else -4.0)
            events = [(2, 8, cls)]
        return Video(f"v{i}", x, int(bool(cls)), (cls,) if cls else (), events=events)
    train = [video(i, c) for i, c in enumerate([None] * 6 + ["A"] * 3 + ["B"] * 3)]
    test = [video(20 + i, c) for i, c in enumerate([None, None, "A", "B"])]
    return Benchmark(train, test, test, ("A", "B"), "tiny-small-ta")


def test_class_and_cluster_assignment():
    bench = _tiny_bench(np.random.default_rng(0))
    cls = class_assignment(bench.train, bench.classes)
    assert cls.tolist() == [-1] * 6 + [0] * 3 + [1] * 3
    km = cluster_assignment(bench.train, k=2, seed=0)
    assert (km[:6] == -1).all()
    assert len(set(km[6:9].tolist())) == 1 and len(set(km[9:].tolist())) == 1 and km[6] != km[9]
    with pytest.raises(ValueError, match="clusters"):
        cluster_assignment(bench.train, k=7)


def test_moe_stages_shapes_and_losses():
    bench = _tiny_bench(np.random.default_rng(1))
    cfg = MoEConfig(expert_dim=8, gate_dim=8, warmup=1)
    assign = class_assignment(bench.train, bench.classes)
    experts = MoE(8, 2, cfg, "experts", assign)
    x = torch.from_numpy(np.stack([v.features[:12] for v in bench.train]))
    batch = {"x": x, "mask": torch.ones(12, 12, dtype=torch.bool),
             "label": torch.tensor([float(v.label) for v in bench.train]), "index": torch.arange(12)}
    out = experts(x, batch["mask"])
    assert out["expert_scores"].shape == (12, 12, 2)
    torch.testing.assert_close(out["scores"], out["expert_scores"].amax(-1))
    for step in (1, 2):                                        # warm-up, then L_TGS
        loss, _ = experts.loss(out, {**batch, "step": step})
        assert torch.isfinite(loss)
    ex_bench = with_expert_scores(bench, experts)
    assert ex_bench.feature_dim == 8 + 1 + 2 and ex_bench.train[0].T == bench.train[0].T
    gate = MoE(8, 2, cfg, "gate")
    xg = torch.from_numpy(np.stack([v.features[:12] for v in ex_bench.train]))
    g = gate(xg, batch["mask"])
    gate.keep[0] = 0                                            # masking expert 0 ...
    masked = gate(xg, batch["mask"])["scores"]
    gate.keep[0] = 1
    xz = xg.clone()
    xz[..., 8 + 1] = 0                                          # ... is feeding it 0
    torch.testing.assert_close(masked, gate(xz, batch["mask"])["scores"])
    assert torch.isfinite(gate.loss(g, {**batch, "step": 5})[0])
    with pytest.raises(ValueError, match="expects x of shape"):
        gate(x, batch["mask"])
