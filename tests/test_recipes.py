"""The shared fine-tuning recipe (TGS chapter and GS-MoE stage 1): wiring and errors, no training."""
from __future__ import annotations

import pytest

from vadbook import gsmoe, recipes
from vadbook.data import make_benchmark
from vadbook.losses import TGSScoreLoss
from vadbook.nn import URDMU
from vadbook.train import FitResult


@pytest.fixture(scope="module")
def bench():
    return make_benchmark("ucf", "small", seed=0, dim=32)


@pytest.fixture
def captured(monkeypatch, bench):
    # the baseline and the cache replaced by fakes: record what the recipe asks zoo to train
    calls = []
    base = FitResult(URDMU(recipes.urdmu_config(bench)), [], 0, 0.0, 0.0)
    monkeypatch.setattr(recipes, "urdmu_baseline", lambda b, s=0: base)

    def fake_trained(name, build, b, cfg, score_loss=None, **kw):
        calls.append(dict(name=name, model=build(), cfg=cfg, loss=score_loss))
        return base

    monkeypatch.setattr(recipes.zoo, "trained", fake_trained)
    return base, calls


def test_fine_tune_starts_from_the_baseline_with_a_fifth_of_the_rate(bench, captured):
    base, calls = captured
    recipes.fine_tune("urdmu", bench, 1, "TGS", steps=40, warmup_steps=20)
    recipes.fine_tune("urdmu", bench, 1, "MIL", steps=40, warmup_steps=20)
    tgs, mil = calls
    full = recipes.config("urdmu", bench, 1)
    for call in calls:
        assert call["cfg"].steps == 40 and call["cfg"].eval_every == 20 and call["cfg"].seed == 1
        assert call["cfg"].lr == pytest.approx(full.lr / 5)
        for k, v in base.model.state_dict().items():       # the start weights are the baseline's
            assert (call["model"].state_dict()[k] == v).all()
    assert isinstance(tgs["loss"], TGSScoreLoss) and tgs["loss"].warmup_steps == 20
    assert mil["loss"] is None and tgs["name"] != mil["name"]


def test_stage1_is_the_tgs_chapter_recipe(bench, captured):
    _, calls = captured
    gsmoe.stage1(bench, 0)
    recipes.fine_tune("urdmu", bench, 0, "TGS")
    first, second = calls
    assert first["name"] == second["name"] and first["cfg"] == second["cfg"]


@pytest.mark.parametrize("model, objective, match", [("urdmu", "topk", "objective"), ("lstm", "TGS", "lstm")])
def test_fine_tune_rejects_unknown_arguments(bench, model, objective, match):
    with pytest.raises(ValueError, match=match):
        recipes.fine_tune(model, bench, 0, objective)
