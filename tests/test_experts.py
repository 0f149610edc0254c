"""Stacked class experts (GS-MoE stage 2) against per-expert loop oracles."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vadbook.losses import tgs_loss, topk_bce
from vadbook.nn.experts import ClassExperts, ExpertConfig, expert_tgs_loss, expert_video_mask
from vadbook.splatting import tgs_targets

E, D, DIM = 5, 12, 16


def _experts(device, **kw) -> ClassExperts:
    cfg = ExpertConfig(n_experts=E, in_dim=D, dim=DIM, dropout=0.0, **kw)
    return ClassExperts(cfg).to(device).eval()


def _batch(device, B=4, T=9):
    x = torch.randn(B, T, D, device=device)
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    mask[1, 6:] = False
    mask[3, 2:] = False
    return x, mask


def _oracle_expert(m: ClassExperts, e: int, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Expert e on one video after another, straight from the text: projection, pre-LN
    4-head self-attention over the video's valid snippets, GELU feed-forward, GELU score MLP."""
    d, H = m.config.dim, m.config.heads
    dh = d // H
    out = torch.zeros(x.shape[:2], device=x.device)
    for b in range(x.shape[0]):
        T_b = int(mask[b].sum())
        v = x[b, :T_b]                                   # only the valid prefix
        h = v @ m.w_in[e] + m.b_in[e]
        a = F.layer_norm(h, (d,)) * m.ln1_w[e] + m.ln1_b[e]
        qkv = a @ m.w_qkv[e] + m.b_qkv[e]
        heads = []
        for i in range(H):
            q = qkv[:, i * dh:(i + 1) * dh]
            k = qkv[:, d + i * dh:d + (i + 1) * dh]
            val = qkv[:, 2 * d + i * dh:2 * d + (i + 1) * dh]
            w = torch.softmax(q @ k.T / math.sqrt(dh), dim=-1)
            heads.append(w @ val)
        h = h + torch.cat(heads, dim=-1) @ m.w_out[e] + m.b_out[e]
        f = F.layer_norm(h, (d,)) * m.ln2_w[e] + m.ln2_b[e]
        h = h + F.gelu(f @ m.w_ff1[e] + m.b_ff1[e]) @ m.w_ff2[e] + m.b_ff2[e]
        logit = F.gelu(h @ m.w_h1[e] + m.b_h1[e]) @ m.w_h2[e] + m.b_h2[e]
        out[b, :T_b] = logit[:, 0]
    return out


def test_shapes_and_padding_values(device):
    m = _experts(device)
    x, mask = _batch(device)
    out = m(x, mask)
    assert out["logits"].shape == (4, 9, E) and out["scores"].shape == (4, 9, E)
    assert out["hidden"].shape == (4, 9, E, DIM)
    assert torch.isfinite(out["hidden"]).all()
    assert (out["scores"][~mask] == 0).all() and (out["logits"][~mask] == 0).all()
    valid = out["scores"][mask]
    assert ((valid > 0) & (valid < 1)).all()


def test_batched_equals_loop_oracle(device):
    m = _experts(device)
    x, mask = _batch(device)
    got = m(x, mask)["logits"]
    want = torch.stack([_oracle_expert(m, e, x, mask) for e in range(E)], dim=-1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_unstacked_modules_and_sequential_agree(device):
    m = _experts(device)
    x, mask = _batch(device)
    got = m(x, mask)["logits"]
    singles = m.unstack().eval()
    want = torch.stack([ex(x, mask) for ex in singles], dim=-1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(m.forward_sequential(x, mask), got, atol=1e-6, rtol=1e-5)


def test_padding_does_not_change_valid_outputs(device):
    m = _experts(device)
    x, mask = _batch(device)
    x_pad = torch.cat([x, 100 * torch.randn(4, 5, D, device=device)], dim=1)
    mask_pad = torch.cat([mask, torch.zeros(4, 5, dtype=torch.bool, device=device)], dim=1)
    a, b = m(x, mask)["logits"], m(x_pad, mask_pad)["logits"][:, :9]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_gradients_equal_training_each_expert_alone(device):
    m = _experts(device)
    x, mask = _batch(device)
    w = torch.randn(4, 9, E, device=device)
    (m(x, mask)["scores"] * w).sum().backward()
    batched = {n: p.grad.clone() for n, p in m.named_parameters()}
    singles = m.unstack().eval()
    for e, ex in enumerate(singles):
        (torch.sigmoid(ex(x, mask)) * mask * w[..., e]).sum().backward()
        torch.testing.assert_close(batched["w_in"][e], ex.proj.weight.grad.T, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batched["w_qkv"][e], ex.attn.in_proj_weight.grad.T, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batched["b_h2"][e], ex.head2.bias.grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batched["ln2_w"][e], ex.ln2.weight.grad, atol=1e-5, rtol=1e-4)
    assert all(torch.isfinite(g).all() for g in batched.values())


def test_dropout_only_in_training(device):
    m = ClassExperts(ExpertConfig(n_experts=E, in_dim=D, dim=DIM, dropout=0.5)).to(device)
    x, mask = _batch(device)
    m.eval()
    torch.testing.assert_close(m(x, mask)["logits"], m(x, mask)["logits"])
    m.train()
    assert not torch.allclose(m(x, mask)["logits"], m(x, mask)["logits"])


def test_bad_inputs():
    with pytest.raises(ValueError, match="divisible"):
        ClassExperts(ExpertConfig(n_experts=2, in_dim=4, dim=10, heads=4))
    m = ClassExperts(ExpertConfig(n_experts=2, in_dim=4, dim=8))
    with pytest.raises(ValueError, match=r"\[B, T, 4\]"):
        m(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="no valid snippet"):
        m(torch.randn(2, 3, 4), torch.tensor([[True, True, False], [False, False, False]]))


# ----- the per-expert L_TGS ---------------------------------------------------------------

def _loss_batch(device, B=8, T=24):
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1.0], device=device)
    assign = torch.tensor([-1, -1, -1, 0, 2, 2, 0, 3], device=device)   # expert 1 and 4: no video
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    mask[2, 15:] = False
    mask[5, 10:] = False
    t = torch.arange(T, device=device, dtype=torch.float32)
    base = 0.1 + 0.8 * torch.exp(-((t - 8.0) ** 2) / 8.0)               # one clear peak
    scores = (base[None, :, None] * torch.rand(B, 1, E, device=device) + 0.05 * torch.rand(B, T, E, device=device))
    return scores.clamp(0.01, 0.99).requires_grad_(True), labels, assign, mask


def test_video_mask():
    labels = torch.tensor([0, 1, 1, 0.0])
    assign = torch.tensor([-1, 2, 0, 5])                  # a normal video's assign is ignored
    use = expert_video_mask(labels, assign, 3)
    assert use.tolist() == [[True, False, True, True], [True, False, False, True], [True, True, False, True]]
    with pytest.raises(ValueError, match="no expert"):
        expert_video_mask(labels, torch.tensor([-1, -1, 0, -1]), 3)


@pytest.mark.parametrize("shared_targets", [False, True])
def test_expert_loss_equals_each_expert_alone(device, shared_targets):
    scores, labels, assign, mask = _loss_batch(device)
    targets = tgs_targets(scores[..., 0].detach(), mask) if shared_targets else None
    total, per_expert = expert_tgs_loss(scores, labels, assign, mask, targets)
    total.backward()
    grad = scores.grad.clone()
    for e in range(E):                                     # oracle: L_TGS on expert e's videos only
        s = scores.detach()[..., e].clone().requires_grad_(True)
        keep = (labels == 0) | (assign == e)
        y = targets[keep] if shared_targets else None
        want = tgs_loss(s[keep], labels[keep], mask[keep], targets=y)
        want.backward()
        torch.testing.assert_close(per_expert[e], want.detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(grad[..., e], s.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(total.detach(), per_expert.sum())


def test_expert_loss_warmup_is_mil(device):
    scores, labels, assign, mask = _loss_batch(device)
    _, per_expert = expert_tgs_loss(scores, labels, assign, mask, warmup=True)
    for e in range(E):
        keep = (labels == 0) | (assign == e)
        s, y, m = scores.detach()[..., e][keep], labels[keep], mask[keep]
        want = topk_bce(s, y, m, form="log_then_mean", reduction="balanced")   # GS-MoE Eq. (2)
        torch.testing.assert_close(per_expert[e], want, atol=1e-5, rtol=1e-5)


def test_expert_loss_errors():
    scores, labels, assign, mask = _loss_batch("cpu")
    with pytest.raises(ValueError, match=r"\[B, T, E\]"):
        expert_tgs_loss(scores[..., 0], labels, assign, mask)
    with pytest.raises(ValueError, match="targets has shape"):
        expert_tgs_loss(scores, labels, assign, mask, targets=torch.zeros(3, 4))
