"""Calibration of the synthetic benchmark: MIL MLP (top-k, ranking) and UR-DMU on ucf small.

Usage: python benchmarks/calibrate.py [--seeds 0 1 2] [--preset ucf] [--models urdmu]
                                     [--steps N] [--eval-every N] [--dropout P]
Targets (published UCF-Crime numbers, design.md): MLP ~0.77 AUC; UR-DMU ~0.87 AUC, AUC_A ~0.70.

``--steps``, ``--eval-every`` and ``--dropout`` try a cheaper UR-DMU recipe than the book's
(300 steps, evaluation every 50, dropout 0.5) without editing vadbook: the run is cached under
its own name, so the book's models are untouched. The time printed is the training time
(validation passes included) of the run that produced the model, also when it is loaded from the cache.
"""
import argparse

import numpy as np

from vadbook import recipes, zoo
from vadbook.data import make_benchmark
from vadbook.metrics import evaluate
from vadbook.nn import URDMU
from vadbook.train import predict

RUNS = {
    "mlp-topk": lambda b, s: recipes.mlp_baseline(b, s, "topk"),
    "mlp-ranking": lambda b, s: recipes.mlp_baseline(b, s, "ranking"),
    "urdmu": recipes.urdmu_baseline,
}


def urdmu_variant(steps: int | None, eval_every: int | None, dropout: float | None):
    """UR-DMU with the book's recipe changed by the given overrides (None: the book's value)."""
    over = {k: v for k, v in (("steps", steps), ("eval_every", eval_every)) if v is not None}
    model_over = {} if dropout is None else {"dropout": dropout}

    def run(bench, seed):
        tag = "-".join(f"{k}{v}" for k, v in {**over, **model_over}.items())
        return zoo.trained(f"urdmu-mil-variant-{tag}", lambda: URDMU(recipes.urdmu_config(bench, **model_over)),
                           bench, recipes.config("urdmu", bench, seed, **over))
    return run

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", default="ucf")
    ap.add_argument("--models", nargs="+", default=list(RUNS))
    ap.add_argument("--steps", type=int, help="UR-DMU training steps (book: 300)")
    ap.add_argument("--eval-every", type=int, help="UR-DMU validation interval (book: 50)")
    ap.add_argument("--dropout", type=float, help="UR-DMU dropout (book: 0.5)")
    a = ap.parse_args()
    if (a.steps, a.eval_every, a.dropout) != (None, None, None):
        RUNS["urdmu"] = urdmu_variant(a.steps, a.eval_every, a.dropout)
    for name in a.models:
        rows = []
        for s in a.seeds:
            bench = make_benchmark(a.preset, seed=s)
            res = RUNS[name](bench, s)
            m = evaluate(predict(res.model, bench.test), bench.test)
            rows.append([m["AUC"], m["AUC_A"], m["AP"], m["AP_A"]])
            print(f"{name} seed {s}: AUC {m['AUC']:.3f} AUC_A {m['AUC_A']:.3f} AP {m['AP']:.3f} "
                  f"AP_A {m['AP_A']:.3f} FAR {m['FAR']:.3f} best@{res.best_step} "
                  f"{res.seconds:.1f}s to train, cached={res.cached}", flush=True)
        r = np.array(rows)
        print(f"{name}: AUC {r[:, 0].mean():.3f} ± {r[:, 0].std():.3f}  AUC_A {r[:, 1].mean():.3f} ± "
              f"{r[:, 1].std():.3f}  AP {r[:, 2].mean():.3f}  AP_A {r[:, 3].mean():.3f}", flush=True)
