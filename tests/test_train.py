"""The trainer and the model cache on a tiny benchmark (seconds, CPU; CUDA when present)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import vadbook
from vadbook import zoo
from vadbook.data import Benchmark, make_benchmark, pad_batch
from vadbook.metrics import evaluate
from vadbook.nn import MILHead, URDMU, URDMUConfig
from vadbook.train import TrainConfig, fit, predict

D = 32


def _balanced(videos, n):
    normal = [v for v in videos if v.label == 0][: n // 2]
    abnormal = [v for v in videos if v.label == 1][: n - n // 2]
    return normal + abnormal


@pytest.fixture(scope="module")
def tiny() -> Benchmark:
    full = make_benchmark("ucf", "small", seed=0, dim=D)
    return Benchmark(_balanced(full.train, 24), _balanced(full.val, 12), _balanced(full.test, 12),
                     full.classes, name="tiny-ucf-seed0", multi_label=False)


def cfg(**kw):
    base = dict(steps=12, batch_size=4, seq_len=16, lr=1e-3, eval_every=3, seed=0, progress=False,
                device="cpu")
    return TrainConfig(**(base | kw))


def small_mlp():
    return MILHead(D, hidden=32, bottleneck=8)


def test_fit_keeps_the_best_validation_checkpoint(tiny):
    res = fit(small_mlp(), tiny.train, tiny.val, cfg(), class_names=tiny.classes)
    evals = [h for h in res.history if "val_AUC" in h]
    assert [h["step"] for h in evals] == [3, 6, 9, 12]
    assert len(res.history) == 12
    best = max(evals, key=lambda h: h["val_AUC"])
    assert res.best_step == best["step"] and res.best_val == pytest.approx(best["val_AUC"])
    # the returned model carries the weights of best_step: its val AUC is the logged one
    auc_now = evaluate(predict(res.model, tiny.val), tiny.val)["AUC"]
    assert auc_now == pytest.approx(best["val_AUC"], abs=1e-6)
    steps, values = res.curve("val_AUC")
    assert steps.tolist() == [3, 6, 9, 12] and np.allclose(values, [h["val_AUC"] for h in evals])


def test_fit_selects_on_the_requested_metric(tiny):
    res = fit(small_mlp(), tiny.train, tiny.val, cfg(select="AP"), class_names=tiny.classes)
    best = max((h for h in res.history if "val_AP" in h), key=lambda h: h["val_AP"])
    assert res.best_step == best["step"]
    assert evaluate(predict(res.model, tiny.val), tiny.val)["AP"] == pytest.approx(best["val_AP"], abs=1e-6)


@pytest.mark.parametrize("build", [
    small_mlp,
    lambda: URDMU(URDMUConfig.small(in_dim=D, dim=32, dim_head=8, a_slots=6, n_slots=6, head_hidden=16)),
])
def test_predict_is_padding_invariant(tiny, build, device):
    torch.manual_seed(0)
    model = build().to(device).eval()
    videos = tiny.test + tiny.val[:3]
    batched = predict(model, videos, device, batch_size=5)
    assert [s.shape for s in batched] == [(v.T,) for v in videos]
    with torch.no_grad():
        for v, s in zip(videos, batched):
            x, mask = pad_batch([v], device)
            alone = model(x, mask)["scores"][0].cpu().numpy()
            np.testing.assert_allclose(s, alone, atol=1e-5)
    assert not model.training


def seeded_mlp(seed):
    vadbook.seed_everything(seed)      # fit() seeds batches and dropout; the caller seeds the init
    return small_mlp()


def test_fit_is_deterministic_under_seed(tiny):
    a = fit(seeded_mlp(0), tiny.train, tiny.val, cfg(), class_names=tiny.classes)
    b = fit(seeded_mlp(0), tiny.train, tiny.val, cfg(), class_names=tiny.classes)
    c = fit(seeded_mlp(0), tiny.train, tiny.val, cfg(seed=1), class_names=tiny.classes)
    la, lb, lc = (np.array([h["loss"] for h in r.history]) for r in (a, b, c))
    np.testing.assert_allclose(la, lb, rtol=1e-5, atol=1e-6)
    assert a.best_step == b.best_step
    assert not np.allclose(la, lc)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_fit_on_device(tiny, device):
    res = fit(small_mlp(), tiny.train, tiny.val, cfg(steps=4, eval_every=2, device=str(device)),
              class_names=tiny.classes)
    assert next(res.model.parameters()).device.type == device.type
    assert np.isfinite([h["loss"] for h in res.history]).all()


def test_predict_rejects_empty_list():
    with pytest.raises(ValueError, match="empty list of videos"):
        predict(small_mlp(), [])


# ---------------------------------------------------------------- zoo cache

def test_zoo_cache_hit_returns_the_same_weights(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("VADBOOK_CACHE", str(tmp_path))
    first = zoo.trained("test-mlp-h32", small_mlp, tiny, cfg(steps=6))
    assert not first.cached
    files = list(tmp_path.glob("test-mlp-h32-*.pt"))
    assert len(files) == 1
    second = zoo.trained("test-mlp-h32", small_mlp, tiny, cfg(steps=6))
    assert second.cached
    assert second.best_step == first.best_step and second.history == first.history
    for k, v in first.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[k].cpu(), v.cpu())
    # a different recipe (config or name) is a different entry
    third = zoo.trained("test-mlp-h32", small_mlp, tiny, cfg(steps=6, seed=1))
    assert not third.cached and len(list(tmp_path.glob("*.pt"))) == 2


def test_zoo_cache_disabled(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("VADBOOK_CACHE", "0")
    monkeypatch.chdir(tmp_path)
    assert zoo.cache_dir() is None
    a = zoo.trained("test-mlp-h32", small_mlp, tiny, cfg(steps=3))
    b = zoo.trained("test-mlp-h32", small_mlp, tiny, cfg(steps=3))
    assert not a.cached and not b.cached
    assert list(tmp_path.rglob("*.pt")) == []
