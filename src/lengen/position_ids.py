"""One path from a batch (or plain ids) to the position ids the model consumes.

Training, evaluation, generation, the held-out checks, diagnosis and text evaluation all call
``prepare_position_ids``: choose the plain 0..T-1 or the task's coupled ids, apply PoSE (training
only, before the scheme's own rewrite), then the scheme's ``prepare_ids`` (random offsets, randomized
ids; what it does depends on the model's train/eval mode). Ids are rewritten where ``generator``
lives (the CPU for the seeded streams), once per sequence, never once per decoding step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lengen.errors import LengenError
from lengen.model import Transformer
from lengen.positions.pose import pose_ids
from lengen.tasks import Batch


def model_ids(batch: Batch, which: str) -> torch.Tensor:
    """The ids a batch gives the model: plain 0..T-1, or the task's coupled ids."""
    if which == "coupled":
        if batch.coupled_ids is None:
            raise LengenError("train.ids is 'coupled' but this task defines no coupled ids")
        return batch.coupled_ids
    return batch.position_ids


@dataclass(frozen=True)
class PoSE:
    """PoSE (lengen.positions.pose): chunks whose ids are shifted so ids up to ``target_length`` - 1 occur."""

    target_length: int
    chunks: int = 2


def prepare_position_ids(model: Transformer, source: Batch | torch.Tensor, kind: str = "plain",
                         generator: torch.Generator | None = None, pose: PoSE | None = None) -> torch.Tensor:
    """The prepared ids [B, T] for a batch (``kind``: plain or coupled) or for given ids [B, T]."""
    ids = source if isinstance(source, torch.Tensor) else model_ids(source, kind)
    if pose is not None:
        ids = pose_ids(ids, pose.target_length, pose.chunks, generator)
    return model.prepare_ids(ids, generator)
