"""`lengen run [FILE.yaml]`: run an experiment file (the embedded default when none is given)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lengen.config import ExperimentConfig, default_experiment_path, load_experiment
from lengen.errors import ConfigError


def execute(cfg: ExperimentConfig, out: Path, workers: int | None, quiet: bool) -> int:
    from lengen.experiment import run_experiment
    from lengen.report.protocol import excluded_models, summary_text
    from lengen.report.results import format_table

    n = len(cfg.cells())
    print(f"lengen: experiment {cfg.experiment!r}: {n} model{'s' if n > 1 else ''} -> {out}", flush=True)
    rows = run_experiment(cfg, out, workers=workers, progress=not quiet)
    print()
    learned = excluded_models(rows)[0] or rows
    print(format_table(learned) + (" (models that learned)" if len(learned) < len(rows) else ""))
    summary = summary_text(rows)
    if summary:
        print("\n" + summary)
    print(f"\nwrote {out / 'results.csv'}, {out / 'accuracy_vs_length.png'}, {out / 'experiment.yaml'}")
    if cfg.language is not None:
        from lengen.text.analysis import FOLDER

        print(f"\n{(out / FOLDER / 'summary.md').read_text(encoding='utf-8')}")
        print(f"language analysis: {out / FOLDER}")
    print(f"report: {out / 'report.html'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else default_experiment_path()
    if args.quick and not args.file:
        raise ConfigError("--quick needs an experiment file with a quick: section")
    cfg = load_experiment(path, quick=args.quick)
    out = Path(args.out) if args.out else Path("runs") / cfg.experiment
    return execute(cfg, out, args.workers, args.quiet)


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
    p.set_defaults(func=_run)
