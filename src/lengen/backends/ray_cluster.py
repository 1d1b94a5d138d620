"""The Ray backend: one Ray task per cell (``num_cpus`` = the cell's torch threads), on a local Ray
runtime or on the cluster at ``address``. Tasks write into the same output folder when it is shared
(resume then works across nodes); each task also returns its rows, which the driver writes, so the
results are complete even without a shared file system. Ray itself is imported only when used."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lengen.backends.base import CellJob, CellStream, register_backend
from lengen.cell_run import ROWS_FILE, run_cell
from lengen.config import Cell, ExperimentConfig
from lengen.errors import LengenError
from lengen.io import atomic_write_json

CONNECT_TIMEOUT_S = 5.0


def _ray_cell(cell_dict: dict[str, Any], cell_dir: str, threads: int) -> list[dict[str, Any]]:
    """The body of one Ray task (a module-level function, so workers import it rather than unpickle it)."""
    return run_cell(Cell.from_dict(cell_dict), Path(cell_dir), progress=False, threads=threads)


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``host:port`` or ``ray://host:port`` address; None for ``auto``."""
    if address == "auto":
        return None
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise LengenError(f"ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, in one line, when nothing answers at a Ray address (ray.init itself may wait minutes)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or e.__class__.__name__)
        raise LengenError(f"no Ray cluster answers at {address} ({why} after at most {timeout:g} s); start one "
                          f"with `ray start --head` or drop --address to run a local Ray runtime") from None


@register_backend("ray")
class RayBackend:
    """One Ray task per cell. Connects to ``address`` or, without one, starts a local runtime with
    ``num_cpus`` CPUs (default: all); reuses a runtime that is already initialised in this process."""

    name = "ray"

    @classmethod
    def from_options(cls, workers: int | None, address: str | None, gpus_per_cell: float) -> RayBackend:
        return cls(address, num_cpus=workers, gpus_per_cell=gpus_per_cell)

    def leads(self, cfg: ExperimentConfig) -> bool:
        return True

    def follow(self) -> None:
        pass

    def __init__(self, address: str | None = None, num_cpus: int | None = None, gpus_per_cell: float = 0.0) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise LengenError("the ray backend needs Ray: pip install 'lengen[ray]' (or pip install ray)") from None
        if address is not None:
            check_reachable(address)  # before anything is written or started
        if gpus_per_cell < 0:
            raise LengenError(f"gpus per cell must be >= 0, got {gpus_per_cell}")
        self.address, self.num_cpus, self.gpus_per_cell = address, num_cpus, gpus_per_cell
        self._started = False  # True when this backend initialised Ray (and must shut it down)

    def start(self) -> None:
        """Initialise Ray unless it already is."""
        import ray

        if ray.is_initialized():
            return
        try:
            if self.address is None:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise LengenError(f"cannot start or join Ray at {self.address or 'a local runtime'}: {first}") from None
        self._started = True

    def run(self, jobs: Sequence[CellJob], progress: bool) -> CellStream:
        import ray

        if not jobs:
            return
        self.start()
        task = ray.remote(max_retries=0)(_ray_cell)
        pending: dict[Any, CellJob] = {}
        try:
            for job in jobs:
                ref = task.options(num_cpus=job.threads, num_gpus=self.gpus_per_cell).remote(
                    job.cell.to_dict(), str(job.cell_dir), job.threads)
                pending[ref] = job
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ref)
                try:
                    rows: list[dict[str, Any]] = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    cause = e.as_instanceof_cause()
                    if isinstance(cause, LengenError):
                        raise LengenError(f"cell {job.cell.key}: {cause}") from None
                    raise
                if not (job.cell_dir / ROWS_FILE).is_file():  # the task ran where this folder is not shared
                    atomic_write_json(job.cell_dir / ROWS_FILE, rows)
                yield job, rows
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if self._started:
                ray.shutdown()
                self._started = False
