"""MIL head, GL-MHSA, memory unit and UR-DMU: oracles, masks, losses, a smoke overfit."""
import copy
import math

import pytest
import torch

from vadbook.losses import topk_bce
from vadbook.nn import GLMHSA, MILHead, MemoryUnit, URDMU, URDMUConfig, local_attention_weights

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                             reason="no CUDA device"))]
D = 16


def tiny_urdmu(**kw):
    cfg = URDMUConfig.small(in_dim=D, dim=32, dim_head=8, a_slots=20, n_slots=20, **kw)
    return URDMU(cfg)


def make_batch(B=4, T=24, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g)
    lengths = torch.randint(3, T + 1, (B,), generator=g)
    lengths[-1] = T
    mask = torch.arange(T)[None] < lengths[:, None]
    label = torch.zeros(B)
    label[B // 2:] = 1
    return {"x": x.to(device), "mask": mask.to(device), "label": label.to(device)}


def forward(model, batch, train):
    model.train(train)
    if isinstance(model, URDMU) and train:
        return model(batch["x"], batch["mask"], batch["label"])
    return model(batch["x"], batch["mask"])


# ---------------------------------------------------------------- oracles
def test_local_attention_weights_match_loop_oracle():
    mask = torch.tensor([[True] * 6 + [False] * 3, [True] * 9])
    w = local_attention_weights(mask)
    for b in range(2):
        for i in range(9):
            row = [math.exp(-abs(i - j) / math.e) if mask[b, j] else 0.0 for j in range(9)]
            want = torch.tensor([r / sum(row) for r in row])
            torch.testing.assert_close(w[b, i], want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_glmhsa_matches_loop_oracle(device):
    torch.manual_seed(0)
    H, dh, T = 3, 4, 7
    attn = GLMHSA(D, heads=H, dim_head=dh).to(device).eval()
    x = torch.randn(2, T, D, device=device)
    mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 7], device=device)
    got = attn(x, mask).cpu()
    W = attn.to_qkvt.weight.detach().cpu()
    xs, m = x.cpu(), mask.cpu()
    for b in range(2):
        for i in range(T):
            heads = []
            for h in range(H):
                def proj(part):  # the (part, head) block of the q/k/v/t projection
                    rows = W[part * H * dh + h * dh: part * H * dh + (h + 1) * dh]
                    return [rows @ xs[b, j] for j in range(T)]
                q, k, v, t = (proj(p) for p in range(4))
                valid = [j for j in range(T) if m[b, j]]
                dots = [float((q[i] @ k[j]).detach()) / math.sqrt(dh) for j in valid]
                z = [math.exp(d - max(dots)) for d in dots]
                glob = sum(zj / sum(z) * v[j] for zj, j in zip(z, valid))
                loc_w = [math.exp(-abs(i - j) / math.e) for j in valid]
                local = sum(lw / sum(loc_w) * t[j] for lw, j in zip(loc_w, valid))
                heads.append(torch.cat([glob, local]))
            want = copy.deepcopy(attn.to_out[0]).cpu()(torch.cat(heads))
            torch.testing.assert_close(got[b, i], want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_memory_unit_matches_loop_oracle(device):
    torch.manual_seed(0)
    mem = MemoryUnit(slots=33, dim=D).to(device)  # k = 33 // 16 + 1 = 3
    x = torch.randn(2, 5, D, device=device)
    with torch.no_grad():
        t_att, aug, att = mem(x)
    M, xs = mem.memory.detach().cpu(), x.cpu()
    for b in range(2):
        for t in range(5):
            a = [1 / (1 + math.exp(-float(xs[b, t] @ M[s]) / math.sqrt(D))) for s in range(33)]
            assert abs(float(t_att[b, t]) - sum(sorted(a, reverse=True)[:3]) / 3) < 1e-5
            torch.testing.assert_close(aug[b, t].cpu(), sum(a[s] * M[s] for s in range(33)), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(att[b, t].cpu(), torch.tensor(a), atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- both models
MODELS = {
    "mil_topk": lambda: MILHead(D, hidden=32, dropout=0.6),
    "mil_ranking": lambda: MILHead(D, hidden=32, dropout=0.6, objective="ranking"),
    "urdmu": tiny_urdmu,
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_range_loss_backward(name, device):
    torch.manual_seed(0)
    model = MODELS[name]().to(device)
    batch = make_batch(device=device)
    for train in (True, False):
        out = forward(model, batch, train)
        assert out["scores"].shape == batch["mask"].shape
        assert ((out["scores"] > 0) & (out["scores"] < 1)).all()
    out = forward(model, batch, True)
    total, parts = model.loss(out, batch)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in parts.values())
    assert torch.allclose(parts["total"], total.detach())
    total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if name == "urdmu":
        assert out["features"].shape == (*batch["mask"].shape, 32)
        assert model.amemory.memory.grad.abs().sum() > 0 and model.encoder_var.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(MODELS))
def test_padding_does_not_change_valid_scores(name, device):
    torch.manual_seed(0)
    model = MODELS[name]().to(device).eval()
    batch = make_batch(device=device)
    mask = batch["mask"]
    with torch.no_grad():
        base = model(batch["x"], mask)["scores"]
        noisy = batch["x"] + 100 * (~mask)[..., None] * torch.randn_like(batch["x"])
        moved = model(noisy, mask)["scores"]
        torch.testing.assert_close(base[mask], moved[mask], atol=1e-5, rtol=1e-5)
        for b in range(mask.shape[0]):  # each video alone, unpadded
            n = int(mask[b].sum())
            alone = model(batch["x"][b:b + 1, :n])["scores"][0]
            torch.testing.assert_close(alone, base[b, :n], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_deterministic_under_seed(name):
    def run():
        torch.manual_seed(123)
        model = MODELS[name]()
        out = forward(model, make_batch(), True)
        total, _ = model.loss(out, make_batch())
        return out["scores"].detach(), total.detach()
    (s1, l1), (s2, l2) = run(), run()
    assert torch.equal(s1, s2) and torch.equal(l1, l2)


@pytest.mark.parametrize("name", list(MODELS))
def test_score_loss_replaces_classification_term(name):
    torch.manual_seed(0)
    model = MODELS[name]()
    batch = make_batch()
    out = forward(model, batch, True)
    total, parts = model.loss(out, batch, score_loss=lambda s, b: 10 * s[b["mask"]].mean())
    default, dparts = model.loss(out, batch)
    want = 10 * out["scores"][batch["mask"]].mean()
    first = "anomaly" if name == "urdmu" else "topk_bce" if name == "mil_topk" else "ranking"
    torch.testing.assert_close(total - want, default - dparts[first], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- UR-DMU specifics
def test_urdmu_splits_by_label_not_position():
    """Interleaving normal and abnormal videos (same order within each label) leaves every
    noise-free loss term unchanged."""
    model = tiny_urdmu(dropout=0.0).train()
    batch = make_batch(B=6, seed=3)
    perm = torch.tensor([0, 3, 1, 4, 2, 5])
    shuffled = {k: v[perm] for k, v in batch.items()}
    torch.manual_seed(0)
    _, p1 = model.loss(model(batch["x"], batch["mask"], batch["label"]), batch)
    torch.manual_seed(0)
    _, p2 = model.loss(model(shuffled["x"], shuffled["mask"], shuffled["label"]), shuffled)
    # "anomaly" and "distance" are left out: they depend on the sampled normal-memory noise
    for key in ("A_loss", "panomaly", "N_loss", "A_Nloss", "triplet", "kl"):
        torch.testing.assert_close(p1[key], p2[key], atol=1e-5, rtol=1e-5)


def test_urdmu_eval_path_and_errors():
    model = tiny_urdmu()
    batch = make_batch()
    model.eval()
    out = model(batch["x"], batch["mask"], batch["label"])  # labels ignored in eval mode
    assert "triplet" not in out and out["features"].shape[-1] == 32
    with pytest.raises(ValueError, match="training outputs"):
        model.loss(out, batch)
    model.train()
    with pytest.raises(ValueError, match="balanced batch"):
        model(batch["x"], batch["mask"], torch.tensor([0.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=f"\\[B, T, {D}\\]"):
        model(torch.randn(2, 5, D + 1))
    with pytest.raises(ValueError, match="no valid snippet"):
        model(batch["x"], torch.zeros_like(batch["mask"]))


def test_urdmu_config_scales():
    paper, small = URDMUConfig.paper(), URDMUConfig.small(in_dim=64, depth=1)
    assert (paper.dim, paper.a_slots, paper.heads, paper.dim_head, paper.in_dim) == (512, 60, 4, 128, 1024)
    assert (paper.w_memory, paper.w_triplet, paper.w_kl, paper.w_distance) == (0.1, 0.1, 0.001, 1e-4)
    assert (small.dim, small.in_dim, small.depth) == (128, 64, 1)


# ---------------------------------------------------------------- smoke overfit
def toy_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T = 8, 32
    x = torch.randn(B, T, D, generator=g)
    label = torch.tensor([0.0] * 4 + [1.0] * 4)
    for b in range(4, 8):  # abnormal videos: a shifted segment
        start = int(torch.randint(0, T - 6, (1,), generator=g))
        x[b, start:start + 6] += 2.0
    return {"x": x, "mask": torch.ones(B, T, dtype=torch.bool), "label": label}


@pytest.fixture
def one_thread():
    """Two BLAS threads on a shared 2-core machine are ~10x slower than one for these tiny
    matmuls; run the training loop single-threaded and restore the setting."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name,lr", [("mil_topk", 1e-2), ("mil_ranking", 1e-2), ("urdmu", 1e-3)])
def test_smoke_overfit(name, lr, one_thread):
    torch.manual_seed(0)
    model = MODELS[name]()
    batch = toy_problem()

    def eval_bce():
        model.eval()
        with torch.no_grad():
            return float(topk_bce(model(batch["x"], batch["mask"])["scores"], batch["label"], batch["mask"]))

    before = eval_bce()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(60):
        out = forward(model, batch, True)
        loss, _ = model.loss(out, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_bce()
    assert after < 0.5 * before, (before, after)
