"""`lengen report RUN_DIR`: (re)write the self-contained HTML report of a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from lengen.errors import LengenError
from lengen.report.html import write_report


def _run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise LengenError(f"run folder not found: {run_dir}")
    print(f"wrote {write_report(run_dir)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report.html from a run's results",
                       description="One self-contained HTML page (figures embedded, no network needed): the "
                                   "question, configuration, figures, tables, environment and conclusions.")
    p.add_argument("run_dir", help="a folder written by `lengen run` or `lengen sweep`")
    p.set_defaults(func=_run)
