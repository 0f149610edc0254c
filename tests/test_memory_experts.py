"""Memory experts and MoME losses: sparse dispatch vs loop oracles and the dense reference,
masks, hand-made cases of the balance / diversity / allocation / router losses."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vadbook.losses.moe import (MoMEWeights, allocation_overlap_loss, load_balance_loss, memory_diversity_loss,
                                memory_loss, mome_objective, router_z_loss)
from vadbook.nn import MemoryUnit
from vadbook.nn.memory_experts import (MemoryExperts, MemoryMixture, PrototypeRouter, block_size,
                                       dense_memory_read, dispatch_plan, grouped_memory_read, route_topk,
                                       routing_matrix)


# ---------------------------------------------------------------- naive oracles (from the text)
def naive_route(G: torch.Tensor, k: int):
    """Eq. (4)-(5) row by row: sort each row, keep the k best; P from the indices."""
    N, E = G.shape
    idx, w, P = [], [], torch.zeros(N, E)
    for t in range(N):
        order = sorted(range(E), key=lambda e: -float(G[t, e]))[:k]
        idx.append(order)
        w.append([float(G[t, e]) for e in order])
        for e in order:
            P[t, e] = 1
    return torch.tensor(idx), torch.tensor(w), P


def naive_mixture(x, memories, index, weights):
    """Eq. (6): each expert takes its subset X_e and reads its memory as a MemoryUnit;
    the snippet's output is the R-weighted sum (augment) / mean (memory similarity)."""
    N, d = x.shape
    E, K, _ = memories.shape
    aug, sim = torch.zeros(N, d, dtype=x.dtype), torch.zeros(N, dtype=x.dtype)
    for e in range(E):
        unit = MemoryUnit(K, d).to(x.dtype)
        unit.memory.data.copy_(memories[e].detach().cpu())
        for t in range(N):
            for j in range(index.shape[1]):
                if int(index[t, j]) == e:                      # x_t in X_e
                    att_t, aug_t, _ = unit(x[t].detach().cpu()[None, None])
                    aug[t] += float(weights[t, j]) * aug_t[0, 0]
                    sim[t] += float(weights[t, j]) * att_t[0, 0] / float(weights[t].sum())
    return aug, sim


# ---------------------------------------------------------------- routing (Eq. 4-6)
def test_route_topk_and_routing_matrix_match_oracle():
    G = torch.rand(30, 7).softmax(-1)
    for k in (1, 3):
        idx, w = route_topk(G, k)
        idx_n, w_n, P_n = naive_route(G, k)
        assert torch.equal(idx, idx_n)
        assert torch.allclose(w, w_n)
        assert torch.equal(routing_matrix(idx, 7), P_n)
        assert torch.equal(routing_matrix(idx, 7).sum(1), torch.full((30,), float(k)))
    with pytest.raises(ValueError, match="top_k must be in"):
        route_topk(G, 8)


@pytest.mark.parametrize("block", [1, 3, 8])
def test_dispatch_plan_groups_rows_by_expert(block):
    E = 6
    expert = torch.tensor([3, 0, 3, 3, 5, 0, 3, 0, 3, 3, 3])    # experts 1, 2, 4 idle
    pos, block_expert = dispatch_plan(expert, E, block)
    assert len(set(pos.tolist())) == len(expert)                # a row per assignment
    assert torch.equal(block_expert[pos // block], expert)      # each row sits in its expert's block
    counts = torch.bincount(expert, minlength=E)
    assert torch.equal(torch.bincount(block_expert, minlength=E), (counts + block - 1) // block)
    for e in range(E):                                           # order kept inside an expert
        assert pos[expert == e].tolist() == sorted(pos[expert == e].tolist())


def test_block_size_bounds_padding():
    for R, E in [(1, 24), (115, 24), (512, 4), (2048, 96), (7, 7)]:
        b = block_size(R, E)
        assert b >= 1 and E * (b - 1) < max(R, 1) + E     # padding < R (+E for b = 1 rounding)


@pytest.mark.parametrize("block", [None, 1, 4])
def test_grouped_memory_read_matches_memory_unit(block, device):
    R, E, K, d = 23, 5, 7, 6
    x = torch.randn(R, d, device=device)
    memories = torch.randn(E, K, d, device=device)
    expert = torch.randint(0, E, (R,), device=device)
    att, aug = grouped_memory_read(x, memories, expert, block)
    for r in range(R):
        unit = MemoryUnit(K, d).to(device)
        unit.memory.data.copy_(memories[expert[r]])
        _, aug_r, att_r = unit(x[r][None, None])
        assert torch.allclose(att[r], att_r[0, 0], atol=1e-5)
        assert torch.allclose(aug[r], aug_r[0, 0], atol=1e-5)
    att_d, aug_d = dense_memory_read(x, memories)
    rows = torch.arange(R, device=device)
    assert torch.allclose(att, att_d[rows, expert], atol=1e-5)
    assert torch.allclose(aug, aug_d[rows, expert], atol=1e-5)


def test_grouped_memory_read_edge_cases():
    memories = torch.randn(4, 5, 3)
    att, aug = grouped_memory_read(torch.zeros(0, 3), memories, torch.zeros(0, dtype=torch.long))
    assert att.shape == (0, 5) and aug.shape == (0, 3)
    x = torch.randn(9, 3)
    for expert in (torch.full((9,), 2), torch.zeros(9, dtype=torch.long)):   # one expert takes all
        att, aug = grouped_memory_read(x, memories, expert)
        assert torch.allclose(aug, dense_memory_read(x, memories)[1][:, int(expert[0])], atol=1e-6)


@pytest.mark.parametrize("k", [1, 2])
def test_memory_experts_sparse_equals_dense_and_loop_oracle(k, device):
    N, E, K, d = 40, 6, 9, 8
    experts = MemoryExperts(E, K, d).to(device)
    x = torch.randn(N, d, device=device)
    index, weights = route_topk(torch.rand(N, E, device=device).softmax(-1), k)
    aug_s, sim_s = experts(x, index, weights, sparse=True)
    aug_d, sim_d = experts(x, index, weights, sparse=False)
    assert torch.allclose(aug_s, aug_d, atol=1e-5) and torch.allclose(sim_s, sim_d, atol=1e-5)
    aug_n, sim_n = naive_mixture(x, experts.memories, index, weights)
    assert torch.allclose(aug_s.cpu(), aug_n, atol=1e-5) and torch.allclose(sim_s.cpu(), sim_n, atol=1e-5)


def test_sparse_dispatch_touches_only_selected_experts():
    N, E, K, d = 50, 8, 6, 4
    experts = MemoryExperts(E, K, d)
    x = torch.randn(N, d)
    gates = torch.rand(N, E)
    gates[:, [1, 4, 6]] = -1.0                        # never in any top-2
    index, weights = route_topk(gates, 2)
    aug, sim = experts(x, index, weights, sparse=True)
    (aug.sum() + sim.sum()).backward()
    g = experts.memories.grad.abs().sum(dim=(1, 2))
    assert (g[[1, 4, 6]] == 0).all() and (g[[0, 2, 3, 5, 7]] > 0).all()


def _memory_flops(E: int, sparse: bool, N: int = 1024, d: int = 32, K: int = 60) -> int:
    torch.manual_seed(0)
    experts = MemoryExperts(E, K, d)
    x = torch.randn(N, d)
    index, weights = route_topk(torch.rand(N, E).softmax(-1), 1)
    with FlopCounterMode(display=False) as fc:
        experts(x, index, weights, sparse=sparse)
    return fc.get_total_flops()


def test_sparse_flops_stay_flat_as_experts_grow():
    sparse = [_memory_flops(E, True) for E in (2, 8, 32, 128)]
    dense = [_memory_flops(E, False) for E in (2, 8, 32)]
    ideal = 2 * 2 * 1024 * 32 * 60                     # two matmuls, one expert per snippet
    assert all(ideal <= f <= 2 * ideal for f in sparse), (sparse, ideal)
    assert max(sparse) / min(sparse) < 1.6
    assert dense[2] / dense[0] > 12                   # the dense reference grows with E


# ---------------------------------------------------------------- routers and the mixture
def test_prototype_router_logits_are_q_times_lambda():
    torch.manual_seed(0)
    protos = torch.randn(5, 12)
    router = PrototypeRouter(8, protos, experts=3, tau=0.1)
    h = torch.randn(10, 8)
    logits, q = router(h)
    z = router.query(router.standardise(h))
    lam = router.allocation_logits
    for t in range(10):
        cos = torch.stack([z[t] @ p / (z[t].norm() * p.norm()) for p in protos])
        q_t = torch.softmax(cos / 0.1, 0)
        assert torch.allclose(q[t], q_t, atol=1e-5)
        assert torch.allclose(logits[t], sum(q_t[p] * lam[p] for p in range(5)), atol=1e-5)
    assert torch.allclose(router.allocation().sum(-1), torch.ones(5), atol=1e-6)


@pytest.mark.parametrize("explicit", [0, 3, 6])
def test_mixture_masks_gates_and_padding_invariance(explicit, device):
    B, T, d, E = 3, 11, 8, 6
    mix = MemoryMixture(d, E, slots=5, top_k=1, explicit=explicit,
                        prototypes=torch.randn(4, 10) if explicit else None, tau=0.05).to(device)
    x = torch.randn(B, T, d, device=device)
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    mask[0, 7:] = False
    mask[2, 3:] = False
    out = mix(x, mask)                                # train mode: batch statistics of valid rows
    assert torch.allclose(out["gates"][mask].sum(-1), torch.ones(int(mask.sum()), device=device), atol=1e-5)
    assert (out["index"][~mask] == -1).all() and (out["index"][mask] >= 0).all()
    assert (out["augment"][~mask] == 0).all() and (out["temporal_att"][~mask] == 0).all()
    x2 = x.clone()
    x2[~mask] = 1e3                                   # padding content must not matter
    out2 = mix(x2, mask)
    assert torch.allclose(out["augment"], out2["augment"]) and torch.equal(out["index"], out2["index"])
    mix.eval()                                        # running statistics: videos independent
    out = mix(x, mask)
    h = x[mask]                                       # one softmax over [explicit ; implicit] logits
    z = []
    if explicit:
        z.append(mix.prototype_router(h)[0])
    if explicit < E:
        z.append(mix.latent_router(h))
    assert torch.allclose(out["gates"][mask], torch.cat(z, -1).softmax(-1), atol=1e-5)
    assert torch.allclose(out["router_logits"][mask], torch.cat(z, -1), atol=1e-5)
    alone = mix(x[:1, :7], None)                      # the unpadded first video
    assert torch.allclose(alone["augment"][0], out["augment"][0, :7], atol=1e-5)
    mix.sparse = False
    dense = mix(x, mask)
    assert torch.allclose(dense["augment"], out["augment"], atol=1e-5)


def test_mixture_rejects_bad_configuration():
    with pytest.raises(ValueError, match="explicit experts need prototype"):
        MemoryMixture(8, 4, explicit=2)
    with pytest.raises(ValueError, match="top_k must be in"):
        MemoryMixture(8, 4, top_k=5)
    with pytest.raises(ValueError, match="explicit experts must be in"):
        MemoryMixture(8, 4, explicit=5, prototypes=torch.randn(3, 5))
    with pytest.raises(ValueError, match="dim 8 but the features have d = 6"):
        MemoryMixture(8, 4)(torch.randn(2, 3, 6))


# ---------------------------------------------------------------- losses (Eq. 7 terms)
def test_load_balance_hand_made_cases():
    E, N = 4, 8
    uniform = torch.full((N, E), 1 / E)
    balanced = torch.arange(N)[:, None] % E
    assert math.isclose(load_balance_loss(uniform, balanced).item(), 1.0, rel_tol=1e-6)
    collapsed = torch.zeros(N, E)
    collapsed[:, 0] = 1
    assert math.isclose(load_balance_loss(collapsed, torch.zeros(N, 1, dtype=torch.long)).item(), E, rel_tol=1e-6)
    # masked rows do not count: padding routed to expert 0 does not unbalance a balanced batch
    gates = torch.cat([uniform, collapsed]).view(2, N, E)
    index = torch.cat([balanced, torch.zeros(N, 1, dtype=torch.long)]).view(2, N, 1)
    mask = torch.tensor([[True] * N, [False] * N])
    mask[1, 0] = True
    loss = load_balance_loss(gates, index, mask)
    rows_g, rows_i = gates[mask], index[mask]
    f = torch.tensor([float((rows_i == e).sum()) / rows_i.numel() for e in range(E)])
    P = torch.stack([rows_g[:, e].mean() for e in range(E)])
    assert math.isclose(loss.item(), E * float((f * P).sum()), rel_tol=1e-6)


def test_router_z_loss_hand_made():
    assert math.isclose(router_z_loss(torch.zeros(5, 4)).item(), math.log(4) ** 2, rel_tol=1e-6)
    logits = torch.zeros(1, 3, 4)
    logits[0, 2] = 100.0                               # padded row with huge logits is ignored
    assert math.isclose(router_z_loss(logits, torch.tensor([[True, True, False]])).item(),
                        math.log(4) ** 2, rel_tol=1e-6)


def test_allocation_overlap_hand_made():
    one_hot = torch.eye(4)[[0, 1, 1, 3, 2]]
    assert allocation_overlap_loss(one_hot).item() == 0.0
    assert math.isclose(allocation_overlap_loss(torch.full((5, 4), 0.25)).item(), 0.75, rel_tol=1e-6)
    A = torch.rand(6, 3).softmax(-1)
    naive = sum(float(A[p, e] * A[p, f]) for p in range(6) for e in range(3) for f in range(3) if e != f) / 6
    assert math.isclose(allocation_overlap_loss(A).item(), naive, rel_tol=1e-5)


def test_memory_diversity_hand_made():
    slots = torch.randn(1, 6, 5)
    assert math.isclose(memory_diversity_loss(slots.expand(3, 6, 5)).item(), 1.0, rel_tol=1e-5)
    ortho = torch.eye(5)[:3, None, :].expand(3, 4, 5) * torch.rand(3, 4, 1).add(0.5)
    assert abs(memory_diversity_loss(ortho).item()) < 1e-6
    assert memory_diversity_loss(torch.randn(1, 4, 5)).item() == 0.0
    M = torch.randn(4, 6, 5)
    assert math.isclose(memory_diversity_loss(M).item(), memory_diversity_loss(M[:, torch.randperm(6)]).item(),
                        rel_tol=1e-5)                   # slot order does not matter
    c = [torch.nn.functional.normalize(M[e] / M[e].norm(dim=-1, keepdim=True), dim=-1).mean(0) for e in range(4)]
    naive = sum(float(c[e] @ c[f] / (c[e].norm() * c[f].norm())) for e in range(4) for f in range(4) if e != f) / 12
    assert math.isclose(memory_diversity_loss(M).item(), naive, rel_tol=1e-5)


def test_memory_loss_matches_loop_and_masks():
    B, T = 4, 20
    s_a, s_n = torch.rand(B, T), torch.rand(B, T)
    labels = torch.tensor([0.0, 0.0, 1.0, 1.0])
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 12:] = False
    mask[3, 5:] = False
    parts = memory_loss(s_a, s_n, labels, mask)

    def topk_mean(v):
        return sorted(v.tolist(), reverse=True)[: len(v) // 16 + 1]

    def bce(p, y):
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    a_loss = sum(bce(sum(topk_mean(s_a[b][mask[b]])) / len(topk_mean(s_a[b][mask[b]])), 1) for b in (2, 3)) / 2
    pan = sum(bce(sum(topk_mean(1 - s_n[b][mask[b]])) / len(topk_mean(1 - s_n[b][mask[b]])), 1) for b in (2, 3)) / 2
    n_vals = [bce(float(v), 1) for b in (0, 1) for v in s_n[b][mask[b]]]
    an_vals = [bce(float(v), 0) for b in (0, 1) for v in s_a[b][mask[b]]]
    assert math.isclose(parts["A_loss"].item(), a_loss, rel_tol=1e-5)
    assert math.isclose(parts["panomaly"].item(), pan, rel_tol=1e-5)
    assert math.isclose(parts["N_loss"].item(), sum(n_vals) / len(n_vals), rel_tol=1e-5)
    assert math.isclose(parts["A_Nloss"].item(), sum(an_vals) / len(an_vals), rel_tol=1e-5)
    with pytest.raises(ValueError, match="needs normal and abnormal"):
        memory_loss(s_a, s_n, torch.ones(B), mask)


def test_mome_objective_is_eq7():
    parts = {k: torch.tensor(v) for k, v in
             dict(cls=0.5, memory=2.0, balance=1.5, reg=0.3, div=0.2, router=10.0).items()}
    w = MoMEWeights(0.1, 0.2, 0.3, 0.4)
    expect = 0.5 + 2.0 + 0.1 * 1.5 + 0.2 * 0.3 + 0.3 * 0.2 + 0.4 * 10.0
    assert math.isclose(mome_objective(parts, w).item(), expect, rel_tol=1e-6)
    with pytest.raises(ValueError, match="missing the terms"):
        mome_objective({"cls": parts["cls"]})


def test_prototype_router_starts_from_cosine_when_spaces_match():
    protos = torch.randn(5, 8)
    router = PrototypeRouter(8, protos, experts=2, tau=0.1).eval()
    assert torch.equal(router.query.weight, torch.eye(8))
    h = torch.randn(4, 8)
    _, q = router(h)
    cos = torch.nn.functional.normalize(h, dim=-1) @ torch.nn.functional.normalize(protos, dim=-1).t()
    assert torch.allclose(q, (cos / 0.1).softmax(-1), atol=1e-5)


def test_prototype_router_removes_the_shared_component():
    router = PrototypeRouter(8, torch.randn(6, 12), experts=2)
    h = 50 * torch.ones(64, 8) + torch.randn(64, 8)          # every snippet shares a large vector
    z = router.standardise(h)
    assert z.mean(0).abs().max() < 1e-4 and (z.std(0) - 1).abs().max() < 0.05
    assert router.running_mean.min() > 4.0                    # momentum 0.1 towards the mean 50
    _, q = router(h)
    assert len(q.argmax(-1).unique()) > 1                     # not every snippet on one prototype
    router.eval()
    assert torch.allclose(router.standardise(h[:1]), (h[:1] - router.running_mean)
                          / (router.running_var + 1e-5).sqrt(), atol=1e-5)
    with pytest.raises(ValueError, match="prototypes must be"):
        PrototypeRouter(8, torch.randn(6), experts=2)
