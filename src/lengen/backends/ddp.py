"""The DDP backend: under torchrun, every cell is trained by all ranks together with
DistributedDataParallel (gloo on CPU, nccl on GPU; ``lengen.distributed`` gives each rank its slice of
every global batch).

Rank 0 leads: it runs the experiment through ``lengen.experiment.run_experiment``, the code path of
local runs (folder checks, resumption, results, the idealized learner, the language analysis, the
report), and announces each pending cell to the other ranks, which train it beside it and wait while
rank 0 evaluates. The output folder must be visible to every rank, since all ranks resume from the
checkpoint rank 0 writes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch
import torch.distributed as dist

from lengen.backends.base import CellJob, CellStream, register_backend
from lengen.cell_run import run_cell
from lengen.config import Cell, ExperimentConfig
from lengen.errors import LengenError
from lengen.train import train

# Set once a process has run DistributedDataParallel under a gloo/nccl group: see ``exit_process``.
_JOINED_A_GROUP = False


@register_backend("ddp")
class DDPBackend:
    """All torchrun ranks train each cell together; rank 0 evaluates and writes."""

    name = "ddp"

    def __init__(self) -> None:
        self.rank, self.world, self.threads = 0, 1, 1
        self._group = False  # this backend started the process group (and destroys it)
        self._followers_waiting = False  # the other ranks wait for rank 0's next announcement

    @classmethod
    def from_options(cls, workers: int | None, address: str | None, gpus_per_cell: float) -> DDPBackend:
        if workers is not None or address is not None:
            raise LengenError("the ddp backend runs one process per torchrun rank: set their number with "
                              "torchrun --nproc-per-node, not --workers or --address")
        if gpus_per_cell:
            raise LengenError(f"--gpus-per-cell is only used with --backend ray, got {gpus_per_cell}")
        return cls()

    def leads(self, cfg: ExperimentConfig) -> bool:
        """Join the torchrun process group; rank 0 leads."""
        if "RANK" not in os.environ:
            raise LengenError("the ddp backend runs under torchrun: torchrun --nproc-per-node N -m lengen.ddp FILE.yaml")
        if not dist.is_initialized():
            cuda = torch.cuda.is_available() and cfg.train.device != "cpu"
            if cuda:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if cuda else "gloo")
            self._group = True
        global _JOINED_A_GROUP
        _JOINED_A_GROUP = True
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // self.world)
        torch.set_num_threads(self.threads)
        self.name = f"ddp x{self.world}"
        self._followers_waiting = True
        return self.rank == 0

    def start(self) -> None:
        pass

    def run(self, jobs: Sequence[CellJob], progress: bool) -> CellStream:
        """Rank 0: announce each cell, train it with the others, evaluate it while they wait."""
        try:
            for job in jobs:
                self._followers_waiting = False
                dist.broadcast_object_list([(job.cell.to_dict(), str(job.cell_dir))], src=0)
                rows = run_cell(job.cell, job.cell_dir, progress=progress, threads=self.threads)
                dist.barrier()  # rank 0 evaluates while the others wait
                self._followers_waiting = True
                yield job, rows
        finally:
            self.release()

    def release(self) -> None:
        """Tell waiting followers that no cell comes (after the last one, or when rank 0 stops early:
        they then exit cleanly and rank 0 reports its error alone). A rank 0 that fails inside a cell
        sends nothing: the others are inside a collective, and torchrun stops them when rank 0 exits."""
        if self.rank == 0 and self._followers_waiting and dist.is_initialized():
            dist.broadcast_object_list([None], src=0)
            self._followers_waiting = False

    def follow(self) -> None:
        """Ranks > 0: train every cell rank 0 announces, until it announces none."""
        while True:
            message: list[tuple[dict, str] | None] = [None]
            dist.broadcast_object_list(message, src=0)
            if message[0] is None:
                return
            cell_dict, cell_dir = message[0]
            train(Cell.from_dict(cell_dict), out_dir=Path(cell_dir), resume=True, progress=False)
            dist.barrier()

    def close(self) -> None:
        """Release the followers if they still wait, and leave the process group this backend joined."""
        self.release()
        if self._group and dist.is_initialized():
            dist.destroy_process_group()
        self._group = False


def joined_a_group() -> bool:
    """Whether this process joined a torchrun process group through this backend."""
    return _JOINED_A_GROUP


def exit_process(code: int) -> NoReturn:
    """End a process that took part in DDP training without Python's interpreter finalization.

    A DistributedDataParallel wrapper keeps its process group alive inside torch even after
    ``destroy_process_group`` (measured with torch 2.13: gloo's ``pt_gloo_runloop`` threads survive it),
    so a worker thread may still be releasing the tensors of the last collective when the interpreter
    finalizes; it then needs the GIL, and the process aborts ("terminate called without an active
    exception", SIGABRT, after every result was written; 3 runs in 46 here). Results, checkpoints
    and reports are written and closed before this is called; only the streams need flushing.
    """
    if not _JOINED_A_GROUP:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream has nothing to flush
            stream.flush()
    os._exit(code)
