"""The backend interface and its registry: where the cells of an experiment run.

A backend is chosen by name (``make_backend("local" | "ray" | "ddp", ...)``, ``lengen sweep --backend``);
another package can add one through the entry-point group ``lengen.backends`` (``lengen.plugins``).
``lengen.experiment.run_experiment`` drives every backend the same way, so outputs, resumption, the
language analysis and the report do not depend on where the cells ran.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lengen.config import Cell, ExperimentConfig
from lengen.registry import Registry


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

    def leads(self, cfg: ExperimentConfig) -> bool:
        """Set up for ``cfg`` before anything is written. False in a process that only follows another
        one's lead (a DDP rank other than 0): it then calls ``follow`` instead of running the experiment."""

    def follow(self) -> None:
        """Take part in the cells the leading process runs, until it says they are done."""

    @classmethod
    def from_options(cls, workers: int | None, address: str | None, gpus_per_cell: float) -> Backend:
        """Build from the command line's options; refuses, in one line, an option it does not use."""


BACKENDS: Registry[Backend] = Registry("backend")  # entry-point group lengen.backends
register_backend = BACKENDS.register


def make_backend(name: str, workers: int | None = None, address: str | None = None,
                 gpus_per_cell: float = 0.0) -> Backend:
    """The backend registered as ``name``, built from the command line's options."""
    return BACKENDS.get_class(name).from_options(workers, address, gpus_per_cell)
