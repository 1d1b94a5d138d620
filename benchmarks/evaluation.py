"""Evaluation of a length grid up to 8x the training length: wall time and peak memory per length.

The model and task are the default experiment's (first cell; weights untrained, which changes no
cost). Each length is measured in its own subprocess, so the peak resident memory it reports
(``ru_maxrss`` after evaluation minus before it) belongs to that length alone; torch's allocations
are invisible to tracemalloc.

    python benchmarks/evaluation.py            # lengths 10..160, 512 samples each (~1 min)
    python benchmarks/evaluation.py --quick    # two short lengths, 32 samples (seconds)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from common import emit, machine

from lengen.config_parse import default_experiment_path, load_experiment
from lengen.evaluate import eval_batch_size, evaluate_length
from lengen.model import Transformer


def measure_one(length: int, samples: int) -> dict[str, float]:
    """Runs in the child process: one length, timed, with its resident-memory high-water mark."""
    torch.set_num_threads(1)
    cell = load_experiment(default_experiment_path()).cells()[0]
    task = cell.build_task()
    cell.model.vocab_size = task.vocab_size
    torch.manual_seed(0)
    model = Transformer(cell.model)
    evaluate_length(model, task, 10, 8, seed=0)  # first-call allocations outside the measurement
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    result = evaluate_length(model, task, length, samples, cell.eval.seed, cell.train.ids)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"length": length, "samples": samples, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "peak_rss_delta_mib": round((after - before) / 1024, 1),  # ru_maxrss is in KiB on Linux
            "batch_size": eval_batch_size(length + 2, cell.model.n_heads, samples),
            "accuracy": result["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two short lengths, few samples (smoke test)")
    parser.add_argument("--factor", type=int, default=8, help="longest length as a multiple of train.max_len")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one length
    parser.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure_one(args.one, args.samples)))
        return
    torch.set_num_threads(1)  # as the children run (reported in the machine line)
    cfg = load_experiment(default_experiment_path())
    longest = args.factor * cfg.train.max_len
    lengths = [10, 20] if args.quick else [n for n in cfg.eval.lengths if n <= longest]
    if not args.quick and longest not in lengths:
        lengths.append(longest)
    samples = 32 if args.quick else cfg.eval.samples
    rows = []
    for n in lengths:
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--samples", str(samples)],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    total_wall = sum(r["wall_s"] for r in rows)
    total_cpu = sum(r["cpu_s"] for r in rows)
    print(f"default experiment's model ({cfg.model}), {samples} samples per length, 1 thread; "
          f"training lengths {cfg.train.min_len}-{cfg.train.max_len}")
    print(f"{'length':>7s} {'batch':>6s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS +MiB':>14s}")
    for r in rows:
        print(f"{r['length']:>7d} {r['batch_size']:>6d} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} "
              f"{r['peak_rss_delta_mib']:>14.1f}")
    print(f"grid total: {total_wall:.1f} s wall, {total_cpu:.1f} s CPU")
    emit({"benchmark": "evaluation", "quick": args.quick, "lengths": rows, "total_wall_s": round(total_wall, 2),
          "total_cpu_s": round(total_cpu, 2), "max_peak_rss_delta_mib": max(r["peak_rss_delta_mib"] for r in rows),
          "machine": machine()})


if __name__ == "__main__":
    main()
