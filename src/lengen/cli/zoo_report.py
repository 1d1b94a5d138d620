"""`lengen zoo-report RUN_DIR`: the task-zoo finding (sparsity against L*) of a `lengen run experiments/zoo.yaml` folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from lengen.config_parse import load_experiment
from lengen.errors import LengenError
from lengen.report.zoo import estimate_full_run, parse_comparison, write_zoo_report


def _run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise LengenError(f"run folder not found: {run_dir}")
    if args.diagnose < 0:
        raise LengenError(f"--diagnose must be 0 (off) or a number of samples, got {args.diagnose}")
    compare = [parse_comparison(c) for c in args.compare]
    path = write_zoo_report(run_dir, args.learned_at, args.holds_at, args.diagnose, compare)
    print(path.read_text(encoding="utf-8"))
    print(f"wrote {path}, {run_dir / 'zoo.json'}, {run_dir / 'zoo_scatter.png'}")
    if args.estimate:
        e = estimate_full_run(run_dir, load_experiment(args.estimate), args.workers)
        print(f"{args.estimate}: {e['cells']} cells, {e['worker_hours']:.1f} worker-hours if no cell stops early, "
              f"{e['wall_hours']:.1f} h on {e['workers']} workers at this run's per-step times")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo-report", help="rank correlation of ground-truth sparsity with L* over a zoo run's tasks")
    p.add_argument("run_dir", help="a folder written by `lengen run experiments/zoo.yaml`")
    p.add_argument("--learned-at", type=float, default=0.9,
                   help="accuracy at the training length that counts as learned (default 0.9)")
    p.add_argument("--holds-at", type=float, default=0.9,
                   help="accuracy that counts as still holding, for L* (default 0.9)")
    p.add_argument("--diagnose", type=int, default=0, metavar="SAMPLES",
                   help="also run `lengen diagnose` on every learned plain-id model (SAMPLES samples at its "
                        "training length, cached in RUN_DIR/zoo_diagnose) and correlate the estimated k with L* "
                        "(default 0: off)")
    p.add_argument("--compare", action="append", default=[], metavar="TREATED:BASELINE",
                   help="also compare scheme labels task by task, e.g. coupled,ppc:rope (labels on one side are "
                        "pooled; repeatable)")
    p.add_argument("--estimate", metavar="FULL.yaml",
                   help="also predict the wall time of this experiment file from RUN_DIR's per-step times")
    p.add_argument("--workers", type=int, default=2, help="workers assumed by --estimate (default 2)")
    p.set_defaults(func=_run)
