"""Run an experiment: train and evaluate every cell, then write tidy results, a table, plots and a report.

Layout of an output folder::

    experiment.yaml          the validated configuration, as run
    environment.json         versions, device, backend and torch threads per cell of the run
    cells/<key>/cell.json    the cell's configuration
    cells/<key>/checkpoint/  weights, optimizer, RNG state (resumable)
    cells/<key>/rows.json    the cell's result rows, written last: its presence means "done"
    results.csv              all finished cells' rows, rewritten atomically after each cell
    accuracy_vs_length.png   the plot (mean over seeds, 95% interval shaded)
    report.html              the self-contained report (summary.csv and heatmaps beside it)

Running again into the same folder skips finished cells and resumes unfinished ones from their
checkpoint, so an interrupted experiment loses at most the steps since the last checkpoint. A cell
killed half-way has no rows.json, so it never contributes a partial row to results.csv.

Where cells run is a *backend* (``lengen.backends``, chosen by name): local processes (the default),
Ray, or all ranks of a torchrun group (DDP). Every backend calls ``lengen.cell_run.run_cell`` on the
same cell with the same thread count, so the numbers do not depend on the backend; and every backend
runs through ``run_experiment`` below, so outputs, resumption, the language analysis and the report
are the same too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from lengen.backends import Backend, CellJob, LocalBackend, default_workers
from lengen.cell_run import ROWS_FILE, read_rows
from lengen.config import Cell, ExperimentConfig
from lengen.errors import LengenError
from lengen.idealized import idealized_rows
from lengen.io import atomic_write_json, atomic_write_text, ensure_writable_dir
from lengen.report.html import ENVIRONMENT_FILE, environment, write_report
from lengen.report.plots import plot_accuracy_vs_length
from lengen.report.results import format_table, write_csv
from lengen.run_folder import check_folder, clean_stale_temp
from lengen.text.analysis import run_language_analysis

IDEALIZED = "idealized"  # folder of the idealized learner's rows


def adopt_moved_cells(out_dir: Path, cells: Sequence[Cell]) -> None:
    """Rename cell folders written under an older key scheme to their current key.

    A folder is adopted only when its ``cell.json`` describes exactly the same configuration, so a
    lengen upgrade that changes how keys are computed resumes old runs instead of restarting them.
    """
    missing = {json.dumps(c.canonical(), sort_keys=True): c.key for c in cells
               if not (out_dir / "cells" / c.key).exists()}
    if not missing or not (out_dir / "cells").is_dir():
        return
    for folder in sorted((out_dir / "cells").iterdir()):
        try:
            saved = Cell.from_dict(json.loads((folder / "cell.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        key = missing.pop(json.dumps(saved.canonical(), sort_keys=True), None)
        if key is not None and folder.name != key:
            folder.rename(out_dir / "cells" / key)


def cell_threads(cfg: ExperimentConfig) -> int:
    """Torch threads per cell: ``train.threads`` when set; else 1 when there are several cells, all cores
    for a single one. It never depends on the backend, so neither do the numbers.

    Tiny models run fastest single-threaded, one process per core; with two threads per process,
    OpenMP's spinning threads collapse throughput as soon as anything else shares the cores (anchors.md).
    """
    if cfg.train.threads is not None:
        return cfg.train.threads
    return 1 if len(cfg.cells()) > 1 else max(1, os.cpu_count() or 1)


def run_experiment(cfg: ExperimentConfig, out_dir: Path, workers: int | None = None, progress: bool = True,
                   on_cell: Callable[[Cell, list[dict[str, Any]]], None] | None = None,
                   backend: Backend | None = None, report: bool = True, force: bool = False) -> list[dict[str, Any]]:
    """Run every unfinished cell on ``backend`` (default: local, ``workers`` processes) and write the outputs.

    ``out_dir`` holding a different experiment is refused (``force``: its contents are moved aside first,
    see ``lengen.run_folder``). Returns the rows of all cells, in the configuration's cell order; a process
    that only follows another's lead (a DDP rank other than 0) takes part in the cells and returns [].
    """
    if backend is not None and not backend.leads(cfg):
        backend.follow()
        return []
    cells = cfg.cells()
    if not cells:
        raise LengenError("the experiment has no cells (is every scheme skipped for every task?)")
    check_folder(cfg, Path(out_dir), force)
    out_dir = ensure_writable_dir(Path(out_dir))
    clean_stale_temp(out_dir)
    keys = [cell.key for cell in cells]
    adopt_moved_cells(out_dir, cells)
    finished: dict[str, list[dict[str, Any]]] = {}
    for key in keys:  # cells finished by an earlier run are read here, never run again
        rows = read_rows(out_dir / "cells" / key)
        if rows is not None:
            finished[key] = rows
    if backend is None:
        pending = len(cells) - len(finished)
        backend = LocalBackend(min(workers or cfg.workers or default_workers(pending), max(1, pending)))
    if len(finished) < len(cells):
        backend.start()
    atomic_write_text(out_dir / "experiment.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    # trained numbers depend on the thread count in their last digits (benchmarks/thread_determinism.py):
    # the count each cell ran with is part of what reproduces it
    threads = cell_threads(cfg)
    env = {**environment(), "backend": backend.name, "cell_threads": threads}
    # a resume records its environment once a cell has finished in it: one that fails keeps the old record
    env_pending = (out_dir / ENVIRONMENT_FILE).is_file()
    if not env_pending:
        atomic_write_json(out_dir / ENVIRONMENT_FILE, env)
    if finished:
        write_results(cfg, out_dir, [r for k in keys if k in finished for r in finished[k]])

    jobs = [CellJob(k, c, out_dir / "cells" / k, threads) for k, c in zip(keys, cells, strict=True)
            if k not in finished]
    if progress and finished:
        print(f"{len(finished)} of {len(cells)} cells already finished in {out_dir}: skipped", flush=True)
    bar = tqdm(total=len(cells), initial=len(finished), unit="cell", disable=not progress or len(cells) < 2,
               dynamic_ncols=True, desc=f"{cfg.experiment} [{backend.name}]")
    results = backend.run(jobs, progress=progress and len(jobs) == 1)
    try:
        for job, rows in results:
            cell = job.cell
            finished[job.key] = rows
            if env_pending:
                atomic_write_json(out_dir / ENVIRONMENT_FILE, env)
                env_pending = False
            write_results(cfg, out_dir, [r for k in keys if k in finished for r in finished[k]])
            if on_cell is not None:
                on_cell(cell, rows)
            bar.update(1)
            if progress:
                longest = max(rows, key=lambda r: r["eval_len"])
                bar.write(f"[{len(finished)}/{len(cells)}] {cell.scheme.label} {cell.grid_values} seed {cell.seed}: "
                          f"{rows[0]['train_steps']} steps, train acc {rows[0]['train_accuracy']:.3f}, "
                          f"acc at L={longest['eval_len']}: {longest['accuracy']:.3f}")
    finally:
        results.close()  # stops the backend: queued cells are cancelled, a Ray runtime it started shut down
        bar.close()
    rows = [r for k in keys for r in finished[k]]
    if not rows:
        raise LengenError("the experiment produced no results")
    if cfg.idealized is not None:  # the theory's learner beside the transformers, cached like a cell
        rows += _idealized(cfg.idealized, cells, out_dir)
        write_results(cfg, out_dir, rows)
    if cfg.language is not None:  # after every cell: it compares all models on the same tokens
        run_language_analysis(cfg, out_dir, progress)
    if report:
        write_report(out_dir)
    return rows


def _idealized(samples: int, cells: list[Cell], out_dir: Path) -> list[dict[str, Any]]:
    """The idealized learner's rows, computed once and kept in their own folder."""
    ideal = read_rows(out_dir / IDEALIZED)
    if ideal is None:
        ideal = idealized_rows(cells, samples)
        atomic_write_json(out_dir / IDEALIZED / ROWS_FILE, ideal)
    return ideal


def write_results(cfg: ExperimentConfig, out_dir: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    write_csv(out_dir / "results.csv", rows)
    plot_accuracy_vs_length(rows, out_dir / "accuracy_vs_length.png")
    atomic_write_text(out_dir / "table.txt", format_table(rows) + "\n")
