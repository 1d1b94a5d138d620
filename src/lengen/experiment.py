"""Run an experiment: train and evaluate every cell, then write tidy results, a table and a plot.

Layout of an output folder::

    experiment.yaml          the validated configuration, as run
    cells/<key>/cell.json    the cell's configuration
    cells/<key>/checkpoint/  weights, optimizer, RNG state (resumable)
    cells/<key>/rows.json    the cell's result rows, written last: its presence means "done"
    results.csv              all finished cells' rows, rewritten atomically after each cell
    accuracy_vs_length.png   the plot

Running again into the same folder skips finished cells and resumes unfinished ones from their
checkpoint, so an interrupted experiment loses at most the steps since the last checkpoint.
"""

from __future__ import annotations

import concurrent.futures as futures
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from lengen.config import Cell, ExperimentConfig
from lengen.errors import LengenError
from lengen.evaluate import evaluate
from lengen.io import atomic_write_json, atomic_write_text, ensure_writable_dir
from lengen.report.plots import plot_accuracy_vs_length
from lengen.report.results import format_table, write_csv
from lengen.train import train

ROWS_FILE = "rows.json"


def cell_rows(cell: Cell, results: list[dict[str, Any]], train_info: dict[str, Any]) -> list[dict[str, Any]]:
    base = {
        "experiment": cell.experiment,
        "task": cell.task,
        "scheme": cell.scheme.label,
        "k": cell.task_args.get("k"),
        "window": cell.task_args.get("window"),
        "seed": cell.seed,
        "train_min_len": cell.train.min_len,
        "train_max_len": cell.train.max_len,
    }
    extra = {k: v for k, v in cell.grid_values.items() if k not in base}
    return [{**base, **r, **extra, **train_info} for r in results]


def run_cell(cell: Cell, cell_dir: Path, progress: bool = True, threads: int | None = None) -> list[dict[str, Any]]:
    """Train (or resume) and evaluate one cell; returns its rows and marks it done on disk."""
    if threads is not None:
        torch.set_num_threads(threads)
    done = cell_dir / ROWS_FILE
    if done.is_file():
        rows: list[dict[str, Any]] = json.loads(done.read_text(encoding="utf-8"))
        return rows
    atomic_write_json(cell_dir / "cell.json", cell.to_dict())
    result = train(cell, out_dir=cell_dir, resume=True, progress=progress)
    start = time.perf_counter()
    task = cell.build_task()
    results = evaluate(result.model, task, cell.eval.lengths, cell.eval.samples, cell.eval.seed, cell.train.ids)
    rows = cell_rows(cell, results, {
        "train_steps": result.steps,
        "train_accuracy": round(result.train_accuracy, 5),
        "stopped_early": result.stopped_early,
        "train_wall_s": round(result.wall_s, 1),
        "eval_wall_s": round(time.perf_counter() - start, 1),
    })
    atomic_write_json(done, rows)
    return rows


def _run_cell_in_worker(args: tuple[dict[str, Any], str, int]) -> list[dict[str, Any]]:
    cell_dict, cell_dir, threads = args
    return run_cell(Cell.from_dict(cell_dict), Path(cell_dir), progress=False, threads=threads)


def default_workers(n_cells: int) -> int:
    """Tiny models train fastest one single-threaded process per core (anchors.md): use the cores."""
    return max(1, min(n_cells, os.cpu_count() or 1))


def run_experiment(cfg: ExperimentConfig, out_dir: Path, workers: int | None = None, progress: bool = True,
                   on_cell: Callable[[Cell, list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Run every cell (in parallel worker processes when ``workers`` > 1) and write the outputs."""
    out_dir = ensure_writable_dir(Path(out_dir))
    atomic_write_text(out_dir / "experiment.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    cells = cfg.cells()
    workers = workers or cfg.workers or default_workers(len(cells))
    workers = min(workers, len(cells))
    dirs = {cell.key: out_dir / "cells" / cell.key for cell in cells}
    finished: dict[str, list[dict[str, Any]]] = {}

    def record(cell: Cell, rows: list[dict[str, Any]]) -> None:
        finished[cell.key] = rows
        write_results(cfg, out_dir, [r for c in cells if c.key in finished for r in finished[c.key]])
        if on_cell is not None:
            on_cell(cell, rows)
        if progress:
            best = max(rows, key=lambda r: r["eval_len"])
            print(f"[{len(finished)}/{len(cells)}] {cell.scheme.label} {cell.grid_values} seed {cell.seed}: "
                  f"{rows[0]['train_steps']} steps, train acc {rows[0]['train_accuracy']:.3f}, "
                  f"acc at L={best['eval_len']}: {best['accuracy']:.3f}", flush=True)

    # Tiny models run fastest single-threaded; with two threads per process, OpenMP's spinning threads
    # collapse throughput as soon as anything else shares the cores (anchors.md). train.threads overrides.
    threads = max(1, (os.cpu_count() or 1) // max(workers, len(cells))) if cfg.train.threads is None \
        else cfg.train.threads
    if workers <= 1:
        for cell in cells:
            record(cell, run_cell(cell, dirs[cell.key], progress=progress, threads=threads))
    else:
        ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
        with futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            jobs = {pool.submit(_run_cell_in_worker, (c.to_dict(), str(dirs[c.key]), threads)): c for c in cells}
            try:
                for job in futures.as_completed(jobs):
                    record(jobs[job], job.result())
            except BaseException:
                for job in jobs:
                    job.cancel()
                raise
    rows = [r for c in cells for r in finished[c.key]]
    if not rows:
        raise LengenError("the experiment produced no results")
    return rows


def write_results(cfg: ExperimentConfig, out_dir: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    write_csv(out_dir / "results.csv", rows)
    plot_accuracy_vs_length(rows, out_dir / "accuracy_vs_length.png")
    atomic_write_text(out_dir / "table.txt", format_table(rows) + "\n")
