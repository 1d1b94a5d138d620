"""`lengen run [FILE.yaml]`: run an experiment file (the embedded default when none is given)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# modules, not functions: tests replace experiment.run_experiment and sizes.check_sizes
from lengen import experiment, sizes
from lengen.config import ExperimentConfig
from lengen.config_parse import default_experiment_path, load_experiment
from lengen.errors import ConfigError
from lengen.report.protocol import excluded_models, summary_text
from lengen.report.results import format_table
from lengen.text.analysis import FOLDER


def add_safety_flags(p: argparse.ArgumentParser) -> None:
    """--force, --no-size-check and --dry-run, shared by run, train and sweep."""
    p.add_argument("--force", action="store_true",
                   help="if --out holds a different experiment, move its contents aside to "
                        "<out>.replaced-<time> and start afresh (default: refuse)")
    p.add_argument("--no-size-check", action="store_true",
                   help="skip the check that every model and evaluation length fits in this machine's memory")
    p.add_argument("--dry-run", action="store_true",
                   help="validate, check sizes, load every task's data once and import what the run needs; "
                        "write nothing")


def dry_run(cfg: ExperimentConfig) -> int:
    """Everything a run does before its first training step, without writing: catches a missing optional
    dependency (a tokenizer, a corpus) in seconds (.ci/install_smoke uses it on fresh installs)."""
    cells = cfg.cells()
    for cell in cells:
        for task in (cell.build_task(), cell.build_eval_task()):
            task.sample(np.random.default_rng(0), 1, max(task.min_length(), cell.train.min_len))
    print(f"lengen: dry run of {cfg.experiment!r}: {len(cells)} cell{'s' if len(cells) > 1 else ''} ready")
    return 0


def execute(cfg: ExperimentConfig, out: Path, workers: int | None, quiet: bool, force: bool = False,
            size_check: bool = True, dry: bool = False) -> int:
    if size_check:
        sizes.check_sizes(cfg)
    if dry:
        refuse_file_as_out(out)
        return dry_run(cfg)
    n = len(cfg.cells())
    print(f"lengen: experiment {cfg.experiment!r}: {n} model{'s' if n > 1 else ''} -> {out}", flush=True)
    rows = experiment.run_experiment(cfg, out, workers=workers, progress=not quiet, force=force)
    print()
    learned = excluded_models(rows)[0] or rows
    if len(learned) < len(rows):
        print("(models that learned in distribution only)")
    print(format_table(learned))
    summary = summary_text(rows)
    if summary:
        print("\n" + summary)
    print(f"\nwrote {out / 'results.csv'}, {out / 'accuracy_vs_length.png'}, {out / 'experiment.yaml'}")
    if cfg.language is not None:
        print(f"\n{(out / FOLDER / 'summary.md').read_text(encoding='utf-8')}")
        print(f"language analysis: {out / FOLDER}")
    print(f"report: {out / 'report.html'}")
    return 0


def refuse_file_as_out(out: Path) -> None:
    """What the run itself refuses when it creates the folder, said by --dry-run too (which writes nothing)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file")


def check_workers(workers: int | None) -> None:
    """--workers 0 would fall back to the default silently: refuse it like any count below 1."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")


def _run(args: argparse.Namespace) -> int:
    check_workers(args.workers)
    path = Path(args.file) if args.file else default_experiment_path()
    if args.quick and not args.file:
        raise ConfigError("--quick needs an experiment file with a quick: section")
    cfg = load_experiment(path, quick=args.quick)
    out = Path(args.out) if args.out else Path("runs") / cfg.experiment
    return execute(cfg, out, args.workers, args.quiet, args.force, not args.no_size_check, args.dry_run)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an experiment file (default: the embedded sparsity sweep)",
                       description="Train and evaluate every cell of an experiment; running again into the "
                                   "same --out folder skips finished cells and resumes unfinished ones.")
    p.add_argument("file", nargs="?", help="experiment YAML (default: the embedded default experiment)")
    p.add_argument("--out", help="output folder (default: runs/<experiment name>)")
    p.add_argument("--quick", action="store_true", help="apply the file's quick: overrides (a smaller run, "
                                                        "written to runs/<experiment>-quick by default)")
    p.add_argument("--workers", type=int, help="parallel worker processes (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_safety_flags(p)
    p.set_defaults(func=_run)
