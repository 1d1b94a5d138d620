"""lengen's own trainer with ``train.compile`` off and on: steady tokens/s and what compiling costs.

``train.compile: true`` wraps the trainer's loss forward in ``torch.compile(dynamic=True)``, so one
compilation serves every training length. Whether it pays depends on the model and on the run's
length: this script measures both sides of that trade on the default experiment's first cell (its
task, lengths and batch) with two models: the default one, and one with d_model 256, 4 layers, RMSNorm and SwiGLU.

Each measurement is one ``train`` call in a fresh subprocess (no compiled code carries over) that
stamps the CPU clock as each step draws its batch. The steady rate is taken over the second half of
the steps, after compilation (which happens in the first steps' forward and backward); the fixed cost
(set-up and, when on, compilation) is the run's CPU time beyond what its tokens take at that rate.
Single-threaded, per CPU second of the child, as ``lengen run`` runs a cell. Runs are interleaved
(off, on, on, off, ...) and the report gives medians.

    python benchmarks/trainer_compile.py            # ~4 min
    python benchmarks/trainer_compile.py --quick    # a few tiny steps (smoke test)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from common import emit, machine, median

from lengen.config import Cell
from lengen.config_parse import default_experiment_path, load_experiment
from lengen.tasks import Task
from lengen.train import train

MODELS: dict[str, dict[str, Any]] = {
    "default": {},  # the default experiment's own model
    "d256": {"d_model": 256, "n_layers": 4, "n_heads": 4, "norm": "rmsnorm", "mlp": "swiglu"},
}
STEPS = {"default": 300, "d256": 40}


def cell_for(model: str, steps: int, compile_: bool) -> Cell:
    cell = load_experiment(default_experiment_path()).cells()[0]
    return dataclasses.replace(cell, model=dataclasses.replace(cell.model, **MODELS[model]), train=dataclasses.replace(
        cell.train, steps=steps, target_accuracy=None, threads=1, checkpoint_every=10**9, compile=compile_))


def child(model: str, steps: int, compile_: bool) -> None:
    """Run one training; print as JSON its CPU seconds, steady CPU seconds per step and tokens."""
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    cell = cell_for(model, steps, compile_)
    stamps: list[float] = []  # CPU clock as each step draws its batch
    tokens: list[int] = []  # and the batch's tokens
    build_task = Cell.build_task

    def stamping_build_task(self: Cell) -> Task:
        task = build_task(self)
        sample = task.sample

        def stamped(*args: Any, **kwargs: Any) -> Any:
            stamps.append(time.process_time())
            batch = sample(*args, **kwargs)
            tokens.append(batch.tokens.numel())
            return batch

        task.sample = stamped  # type: ignore[method-assign]
        return task

    Cell.build_task = stamping_build_task  # type: ignore[method-assign]
    start = time.process_time()
    train(cell, progress=False)
    total = time.process_time() - start
    if len(stamps) != steps:
        raise SystemExit(f"expected one batch per step, saw {len(stamps)} batches in {steps} steps")
    half = steps // 2  # steps half .. steps-1 are steady: compilation is long done
    # the stamps of steps half and steps-1 enclose steps half .. steps-2
    print(json.dumps({"cpu_s": total, "tokens": sum(tokens),
                      "steady_cpu_s_per_step": (stamps[-1] - stamps[half]) / (steps - 1 - half),
                      "steady_tokens_per_step": sum(tokens[half:-1]) / (steps - 1 - half)}))


def measure(model: str, steps: int, compile_: bool) -> dict[str, float]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", model, str(steps), str(int(compile_))]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(cmd[2:])} failed:\n{proc.stderr[-2000:]}")
    child_out = json.loads(proc.stdout.strip().splitlines()[-1])
    per_step = child_out["steady_cpu_s_per_step"]
    rate = child_out["steady_tokens_per_step"] / per_step
    # steps differ in length, so the steady part of the whole run is its tokens at the steady rate
    return {"tokens_per_s": rate, "cpu_s_per_step": per_step, "fixed_cpu_s": child_out["cpu_s"] - child_out["tokens"] / rate}


def bench_model(model: str, steps: int, reps: int) -> dict[str, Any]:
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for rep in range(reps):
        for compile_ in ((False, True) if rep % 2 == 0 else (True, False)):
            runs[compile_].append(measure(model, steps, compile_))
    out: dict[str, Any] = {"model": model, "steps": steps, "reps": reps,
                           "config": cell_for(model, steps, False).model.to_dict()}
    for compile_, name in ((False, "eager"), (True, "compiled")):
        out[name] = {k: round(median([r[k] for r in runs[compile_]]), 4) for k in runs[compile_][0]}
    eager, compiled = out["eager"], out["compiled"]
    out["ratio_compiled_over_eager"] = round(compiled["tokens_per_s"] / eager["tokens_per_s"], 3)
    saved = eager["cpu_s_per_step"] - compiled["cpu_s_per_step"]
    extra = compiled["fixed_cpu_s"] - eager["fixed_cpu_s"]
    # steps after which compiling has paid for itself (None: it never does)
    out["break_even_steps"] = round(extra / saved) if saved > 0 else None
    return out


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), bool(int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the default model, a few steps (smoke test)")
    parser.add_argument("--reps", type=int, default=2, help="interleaved repetitions per model")
    args = parser.parse_args()
    models = {"default": 6} if args.quick else STEPS
    reps = 1 if args.quick else args.reps
    results = [bench_model(m, s, reps) for m, s in models.items()]
    print("train.compile off / on, lengen's trainer on the default experiment's first cell, 1 thread, per CPU second")
    for r in results:
        e, c = r["eager"], r["compiled"]
        cfg = r["config"]
        print(f"\n[{r['model']}] d_model {cfg['d_model']}, {cfg['n_layers']} layers, {cfg['norm']}, {cfg['mlp']}")
        print(f"  eager     {e['tokens_per_s']:>10,.0f} tok/s  {1000 * e['cpu_s_per_step']:7.1f} ms/step  "
              f"fixed {e['fixed_cpu_s']:5.1f} s")
        print(f"  compiled  {c['tokens_per_s']:>10,.0f} tok/s  {1000 * c['cpu_s_per_step']:7.1f} ms/step  "
              f"fixed {c['fixed_cpu_s']:5.1f} s")
        even = r["break_even_steps"]
        print(f"  compiled / eager: {r['ratio_compiled_over_eager']:.2f}x; compiling pays for itself after "
              f"{'never' if even is None else f'{even:,} steps'}")
    emit({"benchmark": "trainer_compile", "quick": args.quick, "models": results, "machine": machine()})


if __name__ == "__main__":
    main()
