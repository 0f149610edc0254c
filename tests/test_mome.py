"""MoME model and the LGT baseline: shapes, masks, fusion, Eq. (7), sparse = dense, training."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from vadbook.losses.moe import MoMEWeights
from vadbook.nn.mome import LGTDetector, MoME, MoMEConfig, route_videos

D = 16


def tiny_config(**kw) -> MoMEConfig:
    base = dict(in_dim=D, dim=16, window=4, heads=2, experts=6, explicit_ratio=0.5, slots=8, head_hidden=8,
                tau=0.05)
    base.update(kw)
    return MoMEConfig(**base)


def tiny_mome(**kw) -> MoME:
    torch.manual_seed(0)
    return MoME(tiny_config(**kw), prototypes=torch.randn(7, 12))


def make_batch(B=4, T=20, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g)
    lengths = torch.tensor([T, 9, T, 13])[:B]
    mask = torch.arange(T)[None] < lengths[:, None]
    label = torch.zeros(B)
    label[B // 2:] = 1
    return {"x": x.to(device), "mask": mask.to(device), "label": label.to(device)}


def test_forward_shapes_scores_and_fusion(device):
    model = tiny_mome().to(device).eval()
    b = make_batch(device=device)
    out = model(b["x"], b["mask"])
    B, T = b["mask"].shape
    assert out["scores"].shape == (B, T) and ((out["scores"] > 0) & (out["scores"] < 1)).all()
    assert out["anomaly_gates"].shape == (B, T, 6) and out["normal_gates"].shape == (B, T, 6)
    assert out["anomaly_index"].shape == (B, T, 1)
    assert out["anomaly_prototype_probs"].shape == (B, T, 7)
    m = b["mask"]
    s_a, s_n = out["anomaly_att"][m], out["normal_att"][m]
    assert torch.allclose(out["fusion_weight"][m], s_a / (s_a + s_n), atol=1e-6)
    # labels do not change the forward pass (the same fusion runs in training and inference)
    assert torch.equal(model(b["x"], b["mask"], b["label"])["scores"], out["scores"])


def test_padding_does_not_change_valid_scores(device):
    model = tiny_mome().to(device).eval()
    b = make_batch(device=device)
    out = model(b["x"], b["mask"])
    x2 = b["x"].clone()
    x2[~b["mask"]] = 50.0
    assert torch.allclose(model(x2, b["mask"])["scores"][b["mask"]], out["scores"][b["mask"]], atol=1e-5)
    alone = model(b["x"][1:2, :9], None)["scores"][0]
    assert torch.allclose(alone, out["scores"][1, :9], atol=1e-5)


def test_sparse_and_dense_models_agree():
    sparse = tiny_mome().eval()
    dense = copy.deepcopy(sparse)
    dense.anomaly.sparse = dense.normal.sparse = False
    b = make_batch()
    assert torch.allclose(sparse(b["x"], b["mask"])["scores"], dense(b["x"], b["mask"])["scores"], atol=1e-5)


def test_loss_is_eq7_and_reaches_every_part():
    model = tiny_mome(weights=MoMEWeights(0.1, 0.2, 0.3, 0.4)).train()
    b = make_batch()
    out = model(b["x"], b["mask"], b["label"])
    total, parts = model.loss(out, b)
    expect = (parts["cls"] + parts["memory"] + 0.1 * parts["balance"] + 0.2 * parts["reg"]
              + 0.3 * parts["div"] + 0.4 * parts["router"])
    assert math.isclose(total.item(), expect.item(), rel_tol=1e-5)
    assert all(torch.isfinite(v) for v in parts.values())
    assert 2.0 <= parts["balance"].item() <= 12.0      # two mixtures, each in [1, E]
    total.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for name in ("anomaly.prototype_router.allocation_logits", "anomaly.prototype_router.query.weight",
                 "anomaly.latent_router.weight", "normal.latent_router.weight",
                 "anomaly.experts.memories", "normal.experts.memories", "lgt.W.weight", "head.0.weight"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name


def test_score_loss_replaces_cls():
    model = tiny_mome().train()
    b = make_batch()
    out = model(b["x"], b["mask"])
    _, parts = model.loss(out, b, score_loss=lambda s, batch: s.sum() * 0 + 7.0)
    assert parts["cls"].item() == 7.0


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_all_implicit_or_all_explicit(ratio):
    model = tiny_mome(explicit_ratio=ratio).train()
    b = make_batch()
    out = model(b["x"], b["mask"])
    _, parts = model.loss(out, b)
    if ratio == 0.0:
        assert model.anomaly.prototype_router is None and parts["reg"].item() == 0.0
        assert "anomaly_prototype_probs" not in out
    else:
        assert model.anomaly.latent_router is None and out["anomaly_router_logits"].shape[-1] == 6
        assert parts["reg"].item() > 0


def test_bad_input_raises():
    model = tiny_mome()
    with pytest.raises(ValueError, match=r"MoME expects x of shape \[B, T, 16\]"):
        model(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="explicit_ratio must be in"):
        _ = tiny_config(explicit_ratio=1.5).explicit


def test_lgt_detector_and_short_fit():
    from vadbook.data import make_benchmark
    from vadbook.train import TrainConfig, fit, predict

    bench = make_benchmark("ucf", "small", seed=0, dim=32)
    cfg = TrainConfig(steps=3, batch_size=4, seq_len=16, eval_every=3, progress=False, device="cpu")
    train = [v for v in bench.train if v.label == 0][:6] + [v for v in bench.train if v.label == 1][:6]
    val = [v for v in bench.val if v.label == 0][:3] + [v for v in bench.val if v.label == 1][:3]
    torch.manual_seed(0)
    model = MoME(tiny_config(in_dim=32), prototypes=torch.randn(7, 12))
    res = fit(model, train, val, cfg, class_names=bench.classes)
    assert all(math.isfinite(h["loss"]) for h in res.history)
    routes = route_videos(res.model, val[:3])
    for k in ("anomaly_expert", "normal_expert", "prototype", "anomaly_att", "normal_att", "fusion_weight", "scores"):
        assert [len(a) for a in routes[k]] == [v.T for v in val[:3]]
    assert all(((a >= 0) & (a < 6)).all() for a in routes["anomaly_expert"])
    assert all(((a >= 0) & (a < 7)).all() for a in routes["prototype"])
    lgt = LGTDetector(tiny_config(in_dim=32))
    res = fit(lgt, train, val, cfg, class_names=bench.classes)
    assert [len(s) for s in predict(res.model, val[:3])] == [v.T for v in val[:3]]


def test_prototype_texts_and_classes_align():
    from vadbook.nn.mome import ANOMALY_PROTOTYPES, PROTOTYPE_CLASSES
    from vadbook.text import class_descriptions

    assert len(ANOMALY_PROTOTYPES) == len(PROTOTYPE_CLASSES) == len(set(ANOMALY_PROTOTYPES))
    ucf = set(class_descriptions("ucf"))
    assert {c for c in PROTOTYPE_CLASSES if c is not None} == ucf
