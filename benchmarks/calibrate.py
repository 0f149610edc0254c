"""Calibration of the synthetic benchmark: MIL MLP (top-k, ranking) and UR-DMU on ucf small.

Usage: python benchmarks/calibrate.py [--seeds 0 1 2] [--preset ucf]
Targets (published UCF-Crime numbers, design.md): MLP ~0.77 AUC; UR-DMU ~0.87 AUC, AUC_A ~0.70.
"""
import argparse
import time

import numpy as np

from vadbook import recipes
from vadbook.data import make_benchmark
from vadbook.metrics import evaluate
from vadbook.train import predict

RUNS = {
    "mlp-topk": lambda b, s: recipes.mlp_baseline(b, s, "topk"),
    "mlp-ranking": lambda b, s: recipes.mlp_baseline(b, s, "ranking"),
    "urdmu": recipes.urdmu_baseline,
}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", default="ucf")
    ap.add_argument("--models", nargs="+", default=list(RUNS))
    a = ap.parse_args()
    for name in a.models:
        rows = []
        for s in a.seeds:
            bench = make_benchmark(a.preset, seed=s)
            t = time.perf_counter()
            res = RUNS[name](bench, s)
            m = evaluate(predict(res.model, bench.test), bench.test)
            rows.append([m["AUC"], m["AUC_A"], m["AP"], m["AP_A"]])
            print(f"{name} seed {s}: AUC {m['AUC']:.3f} AUC_A {m['AUC_A']:.3f} AP {m['AP']:.3f} "
                  f"AP_A {m['AP_A']:.3f} FAR {m['FAR']:.3f} best@{res.best_step} "
                  f"{time.perf_counter() - t:.1f}s cached={res.cached}", flush=True)
        r = np.array(rows)
        print(f"{name}: AUC {r[:, 0].mean():.3f} ± {r[:, 0].std():.3f}  AUC_A {r[:, 1].mean():.3f} ± "
              f"{r[:, 1].std():.3f}  AP {r[:, 2].mean():.3f}  AP_A {r[:, 3].mean():.3f}", flush=True)
