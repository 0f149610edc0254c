"""The book's training recipes: one place for the baselines every chapter starts from.

At the ``small`` scale the recipes are the calibrated CPU settings (a chapter trains each in
seconds); at the ``paper`` scale they are the published hyper-parameters (UR-DMU: Adam
1e-4, weight decay 5e-5, 64 + 64 videos, L = 200, 3000 steps, d = 512). The scale comes from
the benchmark, so ``VADBOOK_SCALE=paper`` switches both data and recipes.
"""
from __future__ import annotations

from dataclasses import replace

from . import zoo
from .losses import TGSScoreLoss
from .data.video import Benchmark
from .nn import MILHead, URDMU, URDMUConfig
from .train import FitResult, TrainConfig

SMALL = {
    "mlp": TrainConfig(steps=300, batch_size=16, seq_len=32, lr=1e-3, weight_decay=5e-5, eval_every=50),
    "urdmu": TrainConfig(steps=300, batch_size=16, seq_len=64, lr=5e-4, weight_decay=5e-5, eval_every=50),
}
PAPER = {
    "mlp": TrainConfig(steps=3000, batch_size=32, seq_len=32, lr=1e-3, weight_decay=5e-5, eval_every=100),
    "urdmu": TrainConfig(steps=3000, batch_size=64, seq_len=200, lr=1e-4, weight_decay=5e-5, eval_every=100),
}


def scale_of(bench: Benchmark) -> str:
    """``"paper"`` for paper-scale synthetic or real benchmarks, else ``"small"``."""
    return "small" if "-small-" in bench.name else "paper"


def config(model: str, bench: Benchmark, seed: int = 0, **overrides) -> TrainConfig:
    """The recipe's :class:`TrainConfig` for ``model`` (``"mlp"`` or ``"urdmu"``) on ``bench``."""
    table = SMALL if scale_of(bench) == "small" else PAPER
    if model not in table:
        raise ValueError(f"no recipe for model {model!r}; expected one of {sorted(table)}")
    select = "AP" if bench.multi_label else "AUC"   # XD-Violence reports AP, UCF-Crime AUC
    return replace(table[model], seed=seed, select=select, **overrides)


def urdmu_config(bench: Benchmark, **overrides) -> URDMUConfig:
    """UR-DMU sizes for the benchmark's scale (d = 128 small, 512 paper)."""
    make = URDMUConfig.small if scale_of(bench) == "small" else URDMUConfig.paper
    return make(in_dim=bench.feature_dim, **overrides)


def mlp_baseline(bench: Benchmark, seed: int = 0, objective: str = "topk") -> FitResult:
    """Sultani's MLP trained with top-k BCE or the ranking loss (cached by :mod:`vadbook.zoo`)."""
    return zoo.trained(f"mlp-{objective}", lambda: MILHead(bench.feature_dim, objective=objective),
                       bench, config("mlp", bench, seed))


def urdmu_baseline(bench: Benchmark, seed: int = 0) -> FitResult:
    """UR-DMU trained with its MIL objective: the base of TGS, glance supervision and GS-MoE."""
    return zoo.trained("urdmu-mil", lambda: URDMU(urdmu_config(bench)), bench, config("urdmu", bench, seed))


def fine_tune(model: str, bench: Benchmark, seed: int = 0, objective: str = "TGS", steps: int = 40,
              warmup_steps: int = 20) -> FitResult:
    """The MIL baseline of ``model`` (``"urdmu"`` or ``"mlp"``) trained ``steps`` more steps (cached).

    ``objective="TGS"``: GS-MoE's L_TGS (Eq. (6)) after ``warmup_steps`` of L_topk-norm alone
    (:class:`vadbook.losses.TGSScoreLoss` with its defaults); ``"MIL"``: the baseline's own
    loss, the control with the same budget. A fifth of the recipe's learning rate, evaluation
    every ``warmup_steps``, the checkpoint chosen on validation. The TGS chapter's experiment
    and GS-MoE's stage 1 (:func:`vadbook.gsmoe.stage1`) share it, so the book trains it once.
    """
    if objective not in ("TGS", "MIL"):
        raise ValueError(f"objective must be 'TGS' or 'MIL', got {objective!r}")
    if model == "urdmu":
        start, build_empty = urdmu_baseline(bench, seed), lambda: URDMU(urdmu_config(bench))
    elif model == "mlp":
        start, build_empty = mlp_baseline(bench, seed, "topk"), lambda: MILHead(bench.feature_dim)
    else:
        raise ValueError(f"no fine-tuning recipe for model {model!r}; expected 'urdmu' or 'mlp'")
    weights = {k: v.detach().cpu().clone() for k, v in start.model.state_dict().items()}

    def build():
        m = build_empty()
        m.load_state_dict(weights)
        return m

    cfg = config(model, bench, seed, steps=steps, eval_every=warmup_steps, lr=config(model, bench, seed).lr / 5)
    loss = TGSScoreLoss(warmup_steps=warmup_steps) if objective == "TGS" else None
    name = f"{model}-ft-from-baseline-" + (f"tgs-{loss.tag}" if loss else "mil")
    return zoo.trained(name, build, bench, cfg, score_loss=loss)
