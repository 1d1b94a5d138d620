"""Does a trained model depend on the number of CPU threads? Trains the default job's first cell for a
few steps with each thread count given and prints the final loss and two weight checksums.

    python benchmarks/thread_determinism.py 1 2          # 150 steps with 1 thread, then with 2

Each run is a fresh subprocess, so every thread count starts from the same state. Different sums at the
last digits mean floating-point reductions were ordered differently: the same seed then gives the same
model only at the same thread count.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys


def one_run(threads: int, steps: int) -> None:
    import torch

    from lengen.config_parse import default_experiment_path, load_experiment
    from lengen.train import train

    torch.set_num_threads(threads)
    cell = load_experiment(default_experiment_path()).cells()[0]
    cell = dataclasses.replace(cell, train=dataclasses.replace(cell.train, steps=steps, check_every=50))
    result = train(cell, progress=False)
    w = torch.cat([p.flatten() for p in result.model.state_dict().values()]).double()
    print(f"threads {threads}: loss {result.history[-1]['loss']!r}  sum {float(w.sum())!r}  "
          f"abs sum {float(w.abs().sum())!r}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("threads", type=int, nargs="+")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        one_run(args.threads[0], args.steps)
        return
    for t in args.threads:
        subprocess.run([sys.executable, __file__, str(t), "--steps", str(args.steps), "--one"], check=True)


if __name__ == "__main__":
    main()
