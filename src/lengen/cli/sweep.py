"""`lengen sweep FILE.yaml`: run an experiment grid on the local process pool or on Ray."""

from __future__ import annotations

import argparse
from pathlib import Path

from lengen import sizes
from lengen.cli.run import add_safety_flags, check_workers, dry_run, refuse_file_as_out
from lengen.config_parse import load_experiment
from lengen.report.results import format_table
from lengen.sweep import BACKENDS, run_sweep


def _run(args: argparse.Namespace) -> int:
    check_workers(args.workers)
    cfg = load_experiment(args.file, quick=args.quick)
    if not args.no_size_check:
        sizes.check_sizes(cfg)
    out = Path(args.out) if args.out else Path("runs") / cfg.experiment
    if args.dry_run:
        refuse_file_as_out(out)
        return dry_run(cfg)
    n = len(cfg.cells())
    where = {"ray": f"ray at {args.address}" if args.address else "a local ray runtime",
             "local": "local worker processes"}.get(args.backend, f"the {args.backend} backend")
    print(f"lengen: sweep {cfg.experiment!r}: {n} cell{'s' if n > 1 else ''} on {where} -> {out}", flush=True)
    rows = run_sweep(cfg, out, backend=args.backend, workers=args.workers, address=args.address,
                     gpus_per_cell=args.gpus_per_cell, progress=not args.quiet, report=not args.no_report,
                     force=args.force)
    if not rows:  # a DDP rank other than 0: rank 0 reports
        return 0
    if not args.quiet:
        print()
        print(format_table(rows))
    print(f"\nwrote {out / 'results.csv'}" + ("" if args.no_report else f" and {out / 'report.html'}"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run an experiment grid in parallel (local processes or Ray)",
                       description="Expand the grid of an experiment file (task parameters x schemes x seeds) "
                                   "into cells and run them in parallel. Running again into the same --out "
                                   "folder skips finished cells and resumes unfinished ones.")
    p.add_argument("file", help="experiment (sweep) YAML")
    p.add_argument("--out", help="output folder (default: runs/<experiment name>)")
    p.add_argument("--quick", action="store_true", help="apply the file's quick: overrides (a smaller run)")
    p.add_argument("--backend", choices=BACKENDS.names(), default="local",
                   help="where cells run (default: local; ddp: under torchrun, all ranks train each cell)")
    p.add_argument("--address", help="Ray cluster address (HOST:PORT, ray://HOST:PORT or auto); default: start a "
                                     "local Ray runtime")
    p.add_argument("--workers", type=int, help="local: worker processes (default: one per core); ray: CPUs of a "
                                               "local runtime")
    p.add_argument("--gpus-per-cell", type=float, default=0.0, help="ray: GPUs each cell's task requests")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_safety_flags(p)
    p.set_defaults(func=_run)
