"""The local backend: cells in this process, or in a pool of spawned worker processes (one torch
thread each by default: tiny models train fastest one single-threaded process per core)."""

from __future__ import annotations

import concurrent.futures as futures
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from lengen.backends.base import CellJob, CellStream, register_backend
from lengen.cell_run import ROWS_FILE, run_cell
from lengen.config import Cell, ExperimentConfig
from lengen.errors import LengenError


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


@register_backend("local")
class LocalBackend:
    """Cells in this process (``workers`` 1) or in a pool of spawned worker processes."""

    name = "local"

    @classmethod
    def from_options(cls, workers: int | None, address: str | None, gpus_per_cell: float) -> LocalBackend:
        if address is not None:
            raise LengenError("--address is only used with --backend ray")
        if gpus_per_cell:
            raise LengenError(f"--gpus-per-cell is only used with --backend ray, got {gpus_per_cell}")
        return cls(workers)

    def leads(self, cfg: ExperimentConfig) -> bool:
        return True

    def follow(self) -> None:
        pass

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
