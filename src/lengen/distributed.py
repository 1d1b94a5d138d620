"""Data-parallel training hooks: what `train` does differently inside a torch.distributed process group.

Outside a process group (the usual case) none of this runs. Inside one (``lengen.ddp`` under
``torchrun``), every rank draws the same global batch from the cell's seeded stream and keeps its own
disjoint 1/world slice of the samples, so ranks see distinct data and the run equals single-process
training at the same global batch size up to floating-point reduction order. The model is wrapped in
DistributedDataParallel (gradients averaged across ranks); the loss and accuracy logged per check
window are reduced over ranks, so every rank takes the same early-stopping decision; only rank 0
writes checkpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from lengen.errors import ConfigError
from lengen.tasks import Batch

LossFn = Callable[..., tuple[torch.Tensor, torch.Tensor, int]]


@dataclass(frozen=True)
class DataSplit:
    rank: int
    world: int

    def shard(self, batch: Batch) -> Batch:
        """This rank's contiguous slice of the samples (every tensor field sliced on dim 0)."""
        n = batch.tokens.shape[0] // self.world
        lo, hi = self.rank * n, (self.rank + 1) * n
        sliced: dict[str, Any] = {f.name: v[lo:hi] for f in dataclasses.fields(batch)
                                  for v in [getattr(batch, f.name)] if isinstance(v, torch.Tensor)}
        return dataclasses.replace(batch, **sliced)

    def reduce(self, loss_sum: torch.Tensor, correct: torch.Tensor, scored: int) -> tuple[float, float, int]:
        """(mean over ranks of the loss sum, total correct, total scored) for logging and early stopping."""
        t = torch.stack([loss_sum.detach().float(), correct.detach().float(),
                         torch.tensor(float(scored), device=loss_sum.device)])
        dist.all_reduce(t)
        return float(t[0]) / self.world, float(t[1]), int(t[2])

    def wrap(self, model: torch.nn.Module, loss_fn: LossFn) -> LossFn:
        """``loss_fn`` with the same signature, run through DistributedDataParallel's forward."""
        device = next(model.parameters()).device
        ddp = torch.nn.parallel.DistributedDataParallel(
            _Loss(model, loss_fn), device_ids=[device.index] if device.type == "cuda" else None,
            # an extra output head is unused when its loss weight is 0; finding that costs a graph traversal per step
            find_unused_parameters=bool(getattr(model, "extra_heads", None)))

        def step_loss(_model: Any, *args: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
            out: tuple[torch.Tensor, torch.Tensor, int] = ddp(*args)
            return out

        return step_loss


class _Loss(torch.nn.Module):
    """DDP synchronises gradients only for work done inside its forward: make the loss that forward."""

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *args: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.loss_fn(self.model, *args)


def data_split(batch_size: int) -> DataSplit | None:
    """The split for this process, or None outside a process group of more than one rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    world, rank = dist.get_world_size(), dist.get_rank()
    if batch_size % world:
        raise ConfigError(f"train: batch_size {batch_size} must be divisible by the number of processes ({world})")
    return DataSplit(rank, world)
