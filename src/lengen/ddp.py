"""Data-parallel training of an experiment's cells: ``torchrun --nproc-per-node N -m lengen.ddp FILE.yaml``.

Each cell is trained by all N processes together with DistributedDataParallel (gloo on CPU, nccl on
GPU); every rank trains on its own slice of each global batch of ``train.batch_size`` samples
(``lengen.distributed``). This is ``lengen run`` on the ``ddp`` backend (``lengen.backends.ddp``):
rank 0 runs the same experiment code as a local run (folder checks, resumption, results, the language
analysis, report.html) and the other ranks follow it cell by cell. The output folder must be visible
to every rank (one machine, or a shared file system), since all ranks resume from the checkpoint
rank 0 writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lengen.backends.ddp import DDPBackend, exit_process
from lengen.config_parse import default_experiment_path, load_experiment
from lengen.errors import LengenError
from lengen.experiment import run_experiment


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun --nproc-per-node N -m lengen.ddp",
                                description="Train every cell of an experiment with DistributedDataParallel.")
    p.add_argument("file", nargs="?", help="experiment YAML (default: the embedded default experiment)")
    p.add_argument("--out", help="output folder (default: runs/<experiment name>-ddp)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--force", action="store_true",
                   help="if --out holds a different experiment, move its contents aside and start afresh")
    p.add_argument("--quiet", action="store_true")
    return p


def run(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    cfg = load_experiment(Path(args.file) if args.file else default_experiment_path())
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.experiment}-ddp"
    backend = DDPBackend()
    try:
        run_experiment(cfg, out, progress=not args.quiet, backend=backend, report=not args.no_report,
                       force=args.force)
        if backend.rank == 0:
            print(f"wrote {out / 'results.csv'}", flush=True)
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except LengenError as e:
        print(f"lengen.ddp: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    exit_process(main())
