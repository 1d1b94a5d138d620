"""Sweeps: an experiment grid run on a backend, the local process pool or a Ray cluster.

A sweep file is an experiment file (``lengen.config``); its grid (task parameters x schemes x seeds)
is the sweep. ``run_sweep`` is ``run_experiment`` with a backend chosen by name from the registry
``lengen.backends.BACKENDS``:

- ``local``: worker processes on this machine, one torch thread each by default (``lengen.backends.local``);
- ``ray``: one Ray task per cell, on a local Ray runtime or a cluster (``lengen.backends.ray_cluster``);
- ``ddp``: under torchrun, every cell trained by all ranks together (``lengen.backends.ddp``).

Every backend calls ``lengen.cell_run.run_cell`` with the same cell and the same thread count, so a
cell's numbers do not depend on where it ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lengen.backends import BACKENDS, make_backend
from lengen.backends.ray_cluster import check_reachable
from lengen.config import ExperimentConfig
from lengen.experiment import run_experiment

__all__ = ["BACKENDS", "check_reachable", "make_backend", "run_sweep"]


def run_sweep(cfg: ExperimentConfig, out_dir: Path, backend: str = "local", workers: int | None = None,
              address: str | None = None, gpus_per_cell: float = 0.0, progress: bool = True,
              report: bool = True, force: bool = False) -> list[dict[str, Any]]:
    """Run every unfinished cell of ``cfg`` on the named backend; returns all rows (see run_experiment)."""
    chosen = make_backend(backend, workers or cfg.workers if backend == "local" else workers, address,
                          gpus_per_cell)
    return run_experiment(cfg, out_dir, progress=progress, backend=chosen, report=report, force=force)
