"""Tokens/s of every registered task's ``sample`` against the tokens/s the trainer consumes.

The trainer is lengen's own ``train`` on the default experiment's first cell (its model, batch size
and length range), single-threaded as ``lengen run`` runs it; each task samples batches of that
size at lengths drawn from the same range. Both rates are per CPU second of this process (one
thread), so other processes' load on the shared cores cancels out.

    python benchmarks/data_generation.py            # ~1 min
    python benchmarks/data_generation.py --quick    # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from common import emit, machine, median

from lengen.config import TrainConfig
from lengen.config_parse import default_experiment_path, load_experiment
from lengen.tasks import TASKS, Task, make_task
from lengen.train import train

TARGET = 20.0


def sample_rate(task: Task, cfg: TrainConfig, batches: int, seed: int) -> float:
    """Tokens per CPU second of ``task.sample`` at the trainer's batch size and lengths."""
    rng = np.random.default_rng(seed)
    lo = max(cfg.min_len, task.min_length())
    hi = max(cfg.max_len, lo)
    tokens, start = 0, time.process_time()
    for _ in range(batches):
        tokens += task.sample(rng, cfg.batch_size, int(rng.integers(lo, hi + 1))).tokens.numel()
    return tokens / (time.process_time() - start)


def trainer_rate(steps: int) -> tuple[float, dict[str, object]]:
    """Tokens per CPU second that ``train`` consumes on the default experiment's first cell."""
    cell = load_experiment(default_experiment_path()).cells()[0]
    cell = dataclasses.replace(cell, train=dataclasses.replace(
        cell.train, steps=steps, target_accuracy=None, threads=1, checkpoint_every=10**9))
    start = time.process_time()
    train(cell, progress=False)
    cpu = time.process_time() - start
    # replay the trainer's data stream (same seeded generator, same draws) to count its tokens
    task, cfg = cell.build_task(), cell.train
    rng = np.random.default_rng([cell.seed, 0])
    tokens = sum(task.sample(rng, cfg.batch_size, int(rng.integers(cfg.min_len, cfg.max_len + 1))).tokens.numel()
                 for _ in range(steps))
    return tokens / cpu, {"task": cell.task, "task_args": cell.task_args, "model": cell.model.to_dict(),
                          "batch_size": cfg.batch_size, "min_len": cfg.min_len, "max_len": cfg.max_len}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few batches (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps, batches, reps = (5, 5, 1) if args.quick else (100, 100, 3)
    consumed, setup = trainer_rate(steps)
    cfg = load_experiment(default_experiment_path()).train
    rows = []
    for name in TASKS.names():
        task = make_task(name)
        rate = median([sample_rate(task, cfg, batches, seed) for seed in range(reps)])
        rows.append({"task": name, "tokens_per_s": round(rate), "ratio_to_trainer": round(rate / consumed, 1)})
    print(f"trainer consumes {consumed:,.0f} tokens per CPU second (default experiment's first cell, "
          f"batch {setup['batch_size']}, lengths {setup['min_len']}-{setup['max_len']}, 1 thread)")
    print(f"{'task':16s} {'tokens/s':>12s} {'x trainer':>10s}")
    for r in rows:
        flag = "" if r["ratio_to_trainer"] >= TARGET else f"  below the {TARGET:.0f}x target"
        print(f"{r['task']:16s} {r['tokens_per_s']:>12,d} {r['ratio_to_trainer']:>9.1f}x{flag}")
    emit({"benchmark": "data_generation", "quick": args.quick, "trainer_tokens_per_s": round(consumed),
          "trainer": setup, "tasks": rows, "target_ratio": TARGET, "machine": machine()})


if __name__ == "__main__":
    main()
