"""Calibration check of the synthetic benchmark: MIL MLP and UR-DMU on the ucf small preset.

Usage: python benchmarks/calibrate.py [--seeds 0 1 2] [--preset ucf]
Targets (published UCF-Crime numbers): MLP ~0.77 AUC; UR-DMU ~0.87 AUC, AUC_A ~0.70.
"""
import argparse
import time

import numpy as np

import vadbook
from vadbook.data.synthetic import make_benchmark
from vadbook.metrics import evaluate
from vadbook.nn import MILHead, URDMU, URDMUConfig
from vadbook.train import TrainConfig, fit, predict

MLP_CFG = dict(steps=300, batch_size=16, seq_len=32, lr=1e-3, eval_every=50)
URDMU_CFG = dict(steps=300, batch_size=16, seq_len=64, lr=5e-4, eval_every=50)


def run(name, seed, preset):
    bench = make_benchmark(preset, "small", seed=seed)
    vadbook.seed_everything(seed)
    D = bench.feature_dim
    if name == "mlp":
        model, cfg = MILHead(D), TrainConfig(seed=seed, progress=False, **MLP_CFG)
    else:
        model, cfg = URDMU(URDMUConfig.small(in_dim=D)), TrainConfig(seed=seed, progress=False, **URDMU_CFG)
    t = time.perf_counter()
    res = fit(model, bench.train, bench.val, cfg)
    m = evaluate(predict(res.model, bench.test), bench.test)
    return m, time.perf_counter() - t, res.best_step


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--preset", default="ucf")
    ap.add_argument("--models", nargs="+", default=["mlp", "urdmu"])
    a = ap.parse_args()
    for name in a.models:
        rows = []
        for s in a.seeds:
            m, sec, best = run(name, s, a.preset)
            rows.append([m["AUC"], m["AUC_A"], m["AP"], m["AP_A"]])
            print(f"{name} seed {s}: AUC {m['AUC']:.3f} AUC_A {m['AUC_A']:.3f} AP {m['AP']:.3f} "
                  f"AP_A {m['AP_A']:.3f} FAR {m['FAR']:.3f} best@{best} {sec:.1f}s", flush=True)
        r = np.array(rows)
        print(f"{name} mean: AUC {r[:,0].mean():.3f}±{r[:,0].std():.3f} AUC_A {r[:,1].mean():.3f} AP {r[:,2].mean():.3f}")
