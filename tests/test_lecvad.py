"""Tests for LEC-VAD: model shapes and masks, Eq. (12) diagonal vs full vs loop, losses on hand
cases, and the Sec. 3.4 inference (runs, outer-inner contrast, NMS) against naive loops."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vadbook.detection_infer import candidate_runs, instances_from_scores, nms_keep, outer_inner_contrast
from vadbook.metrics import temporal_iou
from vadbook.nn.lecvad import LECVAD, LECVADConfig, gmm_masks, gmm_positions, gmm_scores
from vadbook.nn.lecvad_losses import (agnostic_loss, aware_loss, aware_targets, gmm_loss, lecvad_k,
                                      reg_loss, topk_mean_classes)

C = 3


def _model(device, **kw):
    text = torch.nn.functional.normalize(torch.randn(C + 1, 16), dim=-1)
    cfg = LECVADConfig(in_dim=16, n_classes=C, window=4, heads=2, memory_blocks=2, dropout=0.0, **kw)
    return LECVAD(cfg, text).to(device)


def _batch(lengths, device, D=16):
    T = max(lengths)
    x = torch.randn(len(lengths), T, D, device=device)
    mask = torch.arange(T, device=device)[None] < torch.tensor(lengths, device=device)[:, None]
    return x, mask


# ----------------------------------------------------------------------------- model
def test_forward_shapes_and_ranges(device):
    model = _model(device).eval()
    x, mask = _batch([40, 17, 5], device)
    out = model(x, mask)
    B, T = mask.shape
    assert out["scores"].shape == (B, T) and out["s_b"].shape == (B, T, 2)
    for k in ("s_m", "s_tv", "s_aware"):
        assert out[k].shape == (B, T, C + 1)
    assert out["mu"].shape == out["sigma"].shape == (B, T, C) and out["p_m"].shape == (B, C + 1)
    assert ((out["scores"] > 0) & (out["scores"] < 1)).all()
    torch.testing.assert_close(out["s_m"].sum(-1), torch.ones(B, T, device=device))
    torch.testing.assert_close(out["p_m"].sum(-1), torch.ones(B, device=device))
    assert (out["s_gmm"][~mask] == 0).all() and (out["s_gmm"] <= 1 - out["s_m"][..., 0] + 1e-6).all()
    torch.testing.assert_close(out["scores"], 0.5 * (1 - out["s_m"][..., 0] + out["s_b"][..., 1]))


@pytest.mark.parametrize("kw", [{}, {"use_memory": False}, {"use_text": False}, {"hidden": 8}])
def test_padding_does_not_leak(device, kw):
    model = _model(device, **kw).eval()
    x, mask = _batch([30, 9], device)
    x2 = x.clone()
    x2[1, 9:] = 100.0
    with torch.no_grad():
        a, b = model(x, mask), model(x2, mask)
        alone = model(x[1:, :9], mask[1:, :9])
    for k in ("scores", "s_m", "s_gmm", "p_m"):
        torch.testing.assert_close(a[k], b[k])
        torch.testing.assert_close(alone[k][0], a[k][1, : alone[k].shape[1]] if a[k].dim() > 2 or k != "p_m"
                                   else a[k][1], atol=1e-5, rtol=1e-4)


def test_memory_momentum_update(device):
    model = _model(device).train()
    x, mask = _batch([12, 12], device)
    m0 = model.memory.clone()
    feats = model.temporal(model.embed(x), mask)
    torch.manual_seed(1)
    _, f_aug = model.text_branch(feats, mask)                 # Eq. (11) applied once
    torch.testing.assert_close(model.memory, 0.99 * m0 + 0.01 * f_aug.detach().mean(0))
    model.eval()
    m1 = model.memory.clone()
    model(x, mask)
    torch.testing.assert_close(model.memory, m1)              # no update at inference
    torch.testing.assert_close(m0, model.text_proj(model.text))  # initialised with the text


def test_gmm_head_is_one_fc_on_the_concatenation(device):
    """Eq. (12): a shared FC on F_m = [F_aug[c]; F_video[t]; t/T], built naively as [B, T, C, 2d + 1]."""
    model = _model(device).eval()
    x, mask = _batch([10, 6], device)
    with torch.no_grad():
        out = model(x, mask)
        feats = out["features"]
        _, f_aug = model.text_branch(feats, mask)
        B, T, d = feats.shape
        pos = torch.stack([(torch.arange(T, device=device) + 1) / n for n in mask.sum(1).tolist()]) * mask
        f_m = torch.cat([f_aug[:, 1:, None, :].expand(B, C, T, d).transpose(1, 2),
                         feats[:, :, None, :].expand(B, T, C, d),
                         pos[:, :, None, None].expand(B, T, C, 1)], dim=-1)        # [B, T, C, 2d + 1]
        w = torch.cat([model.gmm_text.weight, model.gmm_video.weight, model.gmm_pos.weight], dim=1)
        o = f_m @ w.T + model.gmm_video.bias
    torch.testing.assert_close(out["mu"], torch.sigmoid(o[..., 0]))
    torch.testing.assert_close(out["sigma"], torch.sigmoid(o[..., 1]).clamp_min(1e-3))


def naive_masks(mu, sigma, alpha, lengths, beta):
    """G^t(j) of Eq. (12) with three loops, j and t from 1 to T_b."""
    B, T, K = mu.shape
    G = torch.zeros(B, T, T, dtype=torch.float64)
    for b in range(B):
        n = lengths[b]
        for t in range(n):
            for j in range(n):
                G[b, t, j] = sum(float(alpha[b, t, c]) * math.exp(
                    -beta * ((j + 1) / n - float(mu[b, t, c])) ** 2 / float(sigma[b, t, c]) ** 2) for c in range(K))
    return G


@pytest.mark.parametrize("beta", [0.1, 0.7, 2.0])
def test_eq12_diagonal_equals_full_masks_and_loop(device, beta):
    lengths = [11, 4, 1]
    _, mask = _batch(lengths, device)
    B, T = mask.shape
    mu = torch.rand(B, T, C, device=device) * 1.4 - 0.2
    sigma = torch.rand(B, T, C, device=device) * 0.5 + 0.02
    alpha = torch.rand(B, T, C, device=device).softmax(-1) * 0.9
    diag = gmm_scores(mu, sigma, alpha, mask, beta)
    full = gmm_masks(mu, sigma, alpha, mask, beta)
    torch.testing.assert_close(diag, torch.diagonal(full, dim1=1, dim2=2))
    ref = naive_masks(mu.cpu(), sigma.cpu(), alpha.cpu(), lengths, beta)
    torch.testing.assert_close(full.cpu().double(), ref, atol=1e-5, rtol=1e-4)
    per = gmm_masks(mu, sigma, alpha, mask, beta, per_class=True)
    torch.testing.assert_close(per.sum(-1), full)
    assert gmm_positions(mask)[0, -1] == 1 and gmm_positions(mask)[2, 0] == 1


def test_eq12_diagonal_gradients_flow(device):
    _, mask = _batch([8, 5], device)
    mu = torch.rand(2, 8, C, device=device, requires_grad=True)
    sigma = (torch.rand(2, 8, C, device=device) * 0.3 + 0.05).requires_grad_(True)
    alpha = torch.rand(2, 8, C, device=device, requires_grad=True)
    gmm_scores(mu, sigma, alpha, mask).sum().backward()
    assert all(torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0 for t in (mu, sigma, alpha))


# ----------------------------------------------------------------------------- losses
def test_k_and_topk_classes_against_loop(device):
    x, mask = _batch([40, 16, 15, 3], device)
    assert lecvad_k(mask).tolist() == [2, 1, 1, 1]            # max(floor(T/16), 1)
    s = torch.rand(4, 40, 5, device=device)
    got = topk_mean_classes(s, mask, lecvad_k(mask))
    for b in range(4):
        n = int(mask[b].sum())
        k = max(n // 16, 1)
        for c in range(5):
            want = sorted(s[b, :n, c].tolist(), reverse=True)[:k]
            assert abs(float(got[b, c]) - sum(want) / k) < 1e-6


def test_losses_on_hand_cases(device):
    mask = torch.tensor([[True] * 32, [True] * 20 + [False] * 12], device=device)
    s1 = torch.full((2, 32), 0.2, device=device)
    s1[1, :3] = 0.9                                           # video 1: K = 1, top = 0.9
    s_b = torch.stack([1 - s1, s1], -1)
    labels = torch.tensor([0.0, 1.0], device=device)
    want = -(math.log(1 - 0.2) + math.log(0.9)) / 2           # video 0: K = 2, top-2 mean 0.2
    assert abs(float(agnostic_loss(s_b, labels, mask)) - want) < 1e-5
    # L_gmm: sqrt of the sum of squares over valid snippets, mean over videos
    s_gmm = torch.zeros(2, 32, device=device)
    s_gmm[1, 25:] = 5.0                                       # padding: ignored
    want = (math.sqrt(32 * 0.04) + math.sqrt(3 * 0.81 + 17 * 0.04)) / 2
    assert abs(float(gmm_loss(s_gmm, s1, mask)) - want) < 1e-5
    # L_reg: |1 - s^m[t, 0] - s^b[t, 1]| averaged over valid snippets
    s_m0 = torch.full((2, 32), 0.5, device=device)
    want = (0.3 + (3 * 0.4 + 17 * 0.3) / 20) / 2
    assert abs(float(reg_loss(s_m0, s1, mask)) - want) < 1e-5
    # L_aware: normal -> class 0; multi-hot -> normalised; uniform logits give log(C + 1)
    batch = {"label": labels, "classes": torch.tensor([[0.0, 0, 0], [1, 0, 1]], device=device)}
    g = aware_targets(batch, 3)
    torch.testing.assert_close(g, torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 0, 0.5]], device=device))
    assert abs(float(aware_loss(torch.zeros(2, 32, 4, device=device), g, mask)) - math.log(4)) < 1e-5
    assert aware_targets({"label": labels, "class_idx": torch.tensor([-1, 2], device=device)}, 3)[1, 3] == 1


def test_total_loss_trainer_interface(device):
    model = _model(device).train()
    x, mask = _batch([20, 20, 14, 20], device)
    batch = {"x": x, "mask": mask, "label": torch.tensor([0.0, 0, 1, 1], device=device),
             "classes": torch.tensor([[0.0, 0, 0], [0, 0, 0], [0, 1, 0], [1, 0, 0]], device=device),
             "class_idx": torch.tensor([-1, -1, 1, 0], device=device)}
    out = model(x, mask, labels=batch["label"])
    total, parts = model.loss(out, batch)
    cfg = model.cfg
    want = parts["agnostic"] + parts["aware"] + cfg.lam * parts["gmm"] + cfg.gamma * parts["reg"]
    torch.testing.assert_close(total.detach(), want)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    total2, parts2 = model.loss(out, batch, score_loss=lambda s, b: s.mean())
    torch.testing.assert_close(parts2["agnostic"], out["scores"].mean().detach())
    assert (cfg.lam, cfg.gamma, cfg.beta, cfg.memory_blocks) == (0.3, 1e-4, 0.7, 2)
    assert LECVADConfig(1, 1).memory_blocks == 4 and LECVADConfig(1, 1).momentum == 0.99


def test_bad_input():
    text = torch.randn(C + 1, 16)
    with pytest.raises(ValueError, match="text_features"):
        LECVAD(LECVADConfig(16, C + 1), text)
    model = LECVAD(LECVADConfig(16, C, heads=2, window=4), text)
    with pytest.raises(ValueError, match="LECVAD expects"):
        model(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="abnormal videos have no class"):
        aware_targets({"label": torch.tensor([1.0]), "classes": torch.zeros(1, C)}, C)


# ----------------------------------------------------------------------------- inference
def naive_runs(active):
    out = []
    for r, row in enumerate(active):
        t = 0
        while t < len(row):
            if row[t]:
                s = t
                while t < len(row) and row[t]:
                    t += 1
                out.append((r, s, t))
            else:
                t += 1
    return out


def naive_oic(cas_row, n, s, e, lam=0.25):
    inner = float(np.mean(cas_row[s:e]))
    length = e - s
    o_s = max(0, int(s - lam * length))
    o_e = min(n - 1, int(e - 1 + lam * length))
    outer_idx = list(range(o_s, s)) + list(range(e, o_e + 1))
    return inner - (float(np.mean(cas_row[outer_idx])) if outer_idx else 0.0)


def naive_nms(start, end, score, group, thr):
    order = sorted(range(len(score)), key=lambda i: (-score[i], i))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        order = [j for j in order if not (group[j] == group[i] and
                 temporal_iou([[start[i], end[i]]], [[start[j], end[j]]])[0, 0] > thr)]
    return keep


def test_runs_oic_nms_against_loops():
    rng = np.random.default_rng(0)
    active = rng.random((6, 30)) < 0.45
    active[0] = True
    active[1] = False
    row, start, end = candidate_runs(active)
    assert list(zip(row, start, end)) == naive_runs(active)
    cas = rng.random((6, 30))
    lengths = np.array([30, 30, 25, 30, 12, 30])
    conf = outer_inner_contrast(cas, lengths, row, start, end)
    for r, s, e, c in zip(row, start, end, conf):
        n = lengths[r]
        if e <= n:
            assert abs(c - naive_oic(cas[r], n, s, e)) < 1e-9
    # NMS with heavy overlaps and ties
    n = 60
    s = rng.integers(0, 40, n).astype(float)
    e = s + rng.integers(1, 20, n)
    sc = np.round(rng.random(n), 1)
    grp = rng.integers(0, 3, n)
    for thr in (0.3, 0.5, 0.7):
        assert nms_keep(s, e, sc, grp, thr).tolist() == naive_nms(s, e, sc, grp, thr)
    assert nms_keep(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)).tolist() == []


def test_instances_on_a_hand_made_score_curve():
    """One video, T = 20, C = 2: class 1 fires on [4, 9) and [11, 13); class 2 is filtered by r_cls."""
    T = 20
    s_m = np.zeros((1, T, 3))
    s_m[0, :, 0] = 1.0
    s_m[0, 4:9, 1] = [0.3, 0.6, 0.8, 0.6, 0.3]
    s_m[0, 11:13, 1] = 0.25
    s_m[0, 3, 1] = s_m[0, 9, 1] = 0.1                          # below r_ano: outer context
    s_m[0, :, 2] = 0.5                                         # active everywhere, but ...
    p_m = np.array([[0.5, 0.45, 0.05]])                        # ... p^m_2 = 0.05 < r_cls
    inst = instances_from_scores(s_m, p_m, [T], ["v"], ("Fight", "Fire"))
    assert [(i.start, i.end, i.class_name) for i in inst] == [(4.0, 9.0, "Fight"), (11.0, 13.0, "Fight")]
    # confidence of [4, 9): inner mean 0.52; l = 5, outer = [2, 4) U [9, 10) = 0, 0.1, 0.1
    assert abs(inst[0].score - (0.52 - 0.2 / 3)) < 1e-9
    # [11, 13): l = 2, outer = [10, 11) U [13, 13) -> [10]: 0
    assert abs(inst[1].score - 0.25) < 1e-9
    # duplicates removed by NMS when two classes are the same class... different classes are kept
    p_m2 = np.array([[0.2, 0.4, 0.4]])
    inst2 = instances_from_scores(s_m, p_m2, [T], ["v"], ("Fight", "Fire"))
    assert {i.class_name for i in inst2} == {"Fight", "Fire"} and len(inst2) == 3
    assert instances_from_scores(np.zeros((1, T, 3)), p_m, [T], ["v"], ("a", "b")) == []
    with pytest.raises(ValueError, match="do not agree"):
        instances_from_scores(s_m, p_m, [T], ["v"], ("Fight",))


def test_event_fragmentation_hand_case():
    from types import SimpleNamespace
    from vadbook.detection_infer import event_fragmentation
    v1 = SimpleNamespace(name="a", events=[(10, 20, "x"), (30, 40, "x")])
    v2 = SimpleNamespace(name="b", events=[(0, 4, "y")])
    segs = {"a": [(10, 13), (15, 20), (50, 55)], "b": [(0, 4)]}   # event (30, 40) is missed
    out = event_fragmentation([v1, v2], segs)
    assert out["fragments"] == (2 + 0 + 1) / 3 and out["events"] == 3
    assert abs(out["best_iou"] - (0.5 + 0 + 1) / 3) < 1e-12 and abs(out["hit_rate"] - 2 / 3) < 1e-12
