"""Time one UR-DMU training step of the small recipe and show where it goes.

Usage: python benchmarks/urdmu_step.py [--threads 2] [--dropout 0.5] [--steps 20] [--profile]

Measures the mean wall time of a full step (balanced batch, forward, UR-DMU loss, backward,
Adam) of ``recipes.urdmu_config`` on the ucf small benchmark, after three warm-up steps;
``--profile`` adds the torch profiler's table of the most expensive operators over five steps.
Most of a chapter's first run is this step (300 of them per UR-DMU baseline).
"""
import argparse
import time

import torch

from vadbook import recipes, seed_everything
from vadbook.data import make_benchmark
from vadbook.data.batching import BalancedBatcher
from vadbook.nn import URDMU


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--dropout", type=float, default=None, help="override the recipe's dropout")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    seed_everything(0)
    bench = make_benchmark("ucf", "small", seed=0)
    over = {} if a.dropout is None else {"dropout": a.dropout}
    model = URDMU(recipes.urdmu_config(bench, **over)).train()
    cfg = recipes.config("urdmu", bench, 0)
    batcher = BalancedBatcher(bench.train, bench.classes, cfg.batch_size, cfg.seq_len, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step() -> None:
        batch = batcher.sample()
        batch["step"] = 1
        out = model(batch["x"], batch["mask"], labels=batch["label"])
        loss, _ = model.loss(out, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    per_step = (time.perf_counter() - start) / a.steps
    print(f"threads {a.threads}, dropout {model.config.dropout}: "
          f"{1e3 * per_step:.0f} ms per step ({cfg.steps} steps: {cfg.steps * per_step:.0f} s)")
    if a.profile:
        from torch.profiler import profile
        with profile() as prof:
            for _ in range(5):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
