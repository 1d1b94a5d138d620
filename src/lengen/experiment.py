"""Run an experiment: train and evaluate every cell, then write tidy results, a table, plots and a report.

Layout of an output folder::

    experiment.yaml          the validated configuration, as run
    environment.json         versions, device and backend of the run
    cells/<key>/cell.json    the cell's configuration
    cells/<key>/checkpoint/  weights, optimizer, RNG state (resumable)
    cells/<key>/rows.json    the cell's result rows, written last: its presence means "done"
    results.csv              all finished cells' rows, rewritten atomically after each cell
    accuracy_vs_length.png   the plot (mean over seeds, 95% interval shaded)
    report.html              the self-contained report (summary.csv and heatmaps beside it)

Running again into the same folder skips finished cells and resumes unfinished ones from their
checkpoint, so an interrupted experiment loses at most the steps since the last checkpoint. A cell
killed half-way has no rows.json, so it never contributes a partial row to results.csv.

Where cells run is a *backend*: ``LocalBackend`` (here: in this process or in a pool of worker
processes) or ``lengen.sweep.RayBackend`` (one Ray task per cell). Every backend calls ``run_cell``
on the same cell with the same thread count, so the numbers do not depend on the backend.
"""

from __future__ import annotations

import concurrent.futures as futures
import ctypes
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml
from tqdm import tqdm

from lengen.config import Cell, ExperimentConfig, eval_settings
from lengen.errors import LengenError
from lengen.evaluate import evaluate
from lengen.idealized import idealized_rows
from lengen.io import atomic_write_json, atomic_write_text, ensure_writable_dir
from lengen.report.html import ENVIRONMENT_FILE, environment, write_report
from lengen.report.plots import plot_accuracy_vs_length
from lengen.report.results import format_table, write_csv
from lengen.rows import cell_rows, with_protocol_columns
from lengen.run_folder import check_folder, clean_stale_temp
from lengen.text.analysis import run_language_analysis
from lengen.train import train

ROWS_FILE = "rows.json"
METRICS_FILE = "metrics.csv"
IDEALIZED = "idealized"  # folder of the idealized learner's rows


def read_rows(cell_dir: Path) -> list[dict[str, Any]] | None:
    """A finished cell's rows, or None when the cell has not finished (no complete rows.json)."""
    try:
        rows: list[dict[str, Any]] = json.loads((Path(cell_dir) / ROWS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise LengenError(f"{Path(cell_dir) / ROWS_FILE}: unreadable ({e.__class__.__name__}); delete it to rerun "
                          f"that cell") from None
    return rows


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


def run_cell(cell: Cell, cell_dir: Path, progress: bool = True, threads: int | None = None) -> list[dict[str, Any]]:
    """Train (or resume) and evaluate one cell; returns its rows and marks it done on disk."""
    if threads is not None:
        torch.set_num_threads(threads)
    rows = read_rows(cell_dir)
    if rows is not None:
        return rows
    atomic_write_json(cell_dir / "cell.json", cell.to_dict())
    result = train(cell, out_dir=cell_dir, resume=True, progress=progress)
    write_metrics(cell_dir / METRICS_FILE, result.history)
    start = time.perf_counter()
    info = {
        "train_steps": result.steps,
        "train_accuracy": round(result.train_accuracy, 5),
        "stopped_early": result.stopped_early,
        "train_wall_s": round(result.wall_s, 1),
    }
    if cell.protocol:
        info["selected_step"] = result.selected_step if result.selected_step is not None else result.steps
    rows = []
    for setting in eval_settings(cell):
        task = cell.build_eval_task(setting)
        # the longest training length is always scored: it decides the learned flag
        scored = cell.protocol and task.exact_match_protocol
        lengths = sorted(set(cell.eval.lengths) | ({cell.train.max_len} if scored else set()))
        results = evaluate(result.model, task, lengths, cell.eval.samples, cell.eval.seed, cell.train.ids,
                           cell.eval.mode, cell.eval.restrict_ids)
        if scored:
            results = with_protocol_columns(cell, task, results)
        rows += [{**row, **setting} for row in cell_rows(cell, results, info)]
    for row in rows:
        row["eval_wall_s"] = round(time.perf_counter() - start, 1)
    atomic_write_json(cell_dir / ROWS_FILE, rows)
    return rows


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """A cell's training curves as a tidy CSV: one row per (step, metric, setting, eval_len)."""
    rows: list[dict[str, Any]] = []
    for h in history:
        for metric in ("loss", "accuracy", "lr"):
            if metric in h:
                rows.append({"step": h["step"], "metric": "train_" + metric if metric != "lr" else "lr",
                             "setting": "", "eval_len": "", "value": h[metric]})
        for setting, value in h.get("target", {}).items():
            rows.append({"step": h["step"], "metric": "target_exact", "setting": setting, "eval_len": "",
                         "value": value})
        for setting, length, value in h.get("curves", []):
            rows.append({"step": h["step"], "metric": "exact", "setting": setting, "eval_len": length, "value": value})
    write_csv(path, rows, first=["step", "metric", "setting", "eval_len", "value"])


@dataclass(frozen=True)
class CellJob:
    key: str  # the cell's key when planned (training fills in model.vocab_size, which changes cell.key)
    cell: Cell
    cell_dir: Path
    threads: int  # torch threads for this cell (the same on every backend, so the numbers are too)


CellStream = Generator[tuple[CellJob, list[dict[str, Any]]], None, None]  # (job, its rows) as each cell finishes


class Backend(Protocol):
    """Runs cells somewhere and yields each one's rows as it finishes (in any order)."""

    name: str

    def start(self) -> None:
        """Connect or start up; raises a one-line LengenError before any output is written if it cannot."""

    def run(self, jobs: Sequence[CellJob], progress: bool) -> CellStream:
        """Yield (job, rows) per job; stop early (cancelling the rest) when the caller stops iterating."""


def _run_job(job: CellJob, progress: bool = False) -> list[dict[str, Any]]:
    return run_cell(job.cell, job.cell_dir, progress=progress, threads=job.threads)


def _run_job_in_worker(args: tuple[dict[str, Any], str, int]) -> list[dict[str, Any]]:
    cell_dict, cell_dir, threads = args
    return run_cell(Cell.from_dict(cell_dict), Path(cell_dir), progress=False, threads=threads)


def _die_with_parent() -> None:
    """Worker initializer: have the kernel stop this worker when the parent dies, even by SIGKILL,
    so no orphan keeps training (and writing checkpoints) after `lengen run` is gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def default_workers(n_cells: int) -> int:
    """Tiny models train fastest one single-threaded process per core (anchors.md): use the cores."""
    return max(1, min(n_cells, os.cpu_count() or 1))


class LocalBackend:
    """Cells in this process (``workers`` 1) or in a pool of spawned worker processes."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise LengenError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def start(self) -> None:
        pass

    def run(self, jobs: Sequence[CellJob], progress: bool) -> CellStream:
        workers = min(self.workers or default_workers(len(jobs)), max(1, len(jobs)))
        if workers <= 1:
            for job in jobs:
                yield job, _run_job(job, progress)
            return
        ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
        with futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_die_with_parent) as pool:
            running = {pool.submit(_run_job_in_worker, (j.cell.to_dict(), str(j.cell_dir), j.threads)): j
                       for j in jobs}
            try:
                for done in futures.as_completed(running):
                    try:
                        rows = done.result()
                    except BrokenProcessPool:
                        raise LengenError(worker_died(jobs)) from None
                    yield running[done], rows
            except BaseException:  # an error, Ctrl-C or SIGTERM: stop the workers now, not after their cell
                processes = list((getattr(pool, "_processes", None) or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for process in processes:
                    process.terminate()
                raise
            finally:  # a caller that stops early: queued cells never start
                for f in running:
                    f.cancel()


def worker_died(jobs: Sequence[CellJob]) -> str:
    """The one line for a worker process that died (killed, out of memory): a pool cannot tell which
    future it ran, but a started cell has its cell.json and no rows.json yet."""
    started = [job.key for job in jobs if (job.cell_dir / "cell.json").is_file()
               and not (job.cell_dir / ROWS_FILE).is_file()]
    if not started:
        which = "a cell"
    elif len(started) == 1:
        which = f"cell {started[0]}"
    else:
        which = f"cell {started[0]} or one of the {len(started) - 1} other cells running with it"
    return (f"a worker process died while running {which} (killed, or out of memory?); finished cells are "
            f"kept: run the same command again to resume")


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
    see ``lengen.run_folder``). Returns the rows of all cells, in the configuration's cell order.
    """

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
    env = {**environment(), "backend": backend.name}
    # a resume records its environment once a cell has finished in it: one that fails keeps the old record
    env_pending = (out_dir / ENVIRONMENT_FILE).is_file()
    if not env_pending:
        atomic_write_json(out_dir / ENVIRONMENT_FILE, env)
    if finished:
        write_results(cfg, out_dir, [r for k in keys if k in finished for r in finished[k]])

    threads = cell_threads(cfg)
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
        ideal = read_rows(out_dir / IDEALIZED)
        if ideal is None:
            ideal = idealized_rows(cells, cfg.idealized)
            atomic_write_json(out_dir / IDEALIZED / ROWS_FILE, ideal)
        rows += ideal
        write_results(cfg, out_dir, rows)
    if cfg.language is not None:  # after every cell: it compares all models on the same tokens

        run_language_analysis(cfg, out_dir, progress)
    if report:
        write_report(out_dir)
    return rows


def write_results(cfg: ExperimentConfig, out_dir: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    write_csv(out_dir / "results.csv", rows)
    plot_accuracy_vs_length(rows, out_dir / "accuracy_vs_length.png")
    atomic_write_text(out_dir / "table.txt", format_table(rows) + "\n")
