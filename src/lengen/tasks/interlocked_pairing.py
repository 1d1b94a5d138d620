"""interlocked_pairing (Delétang et al.'s repository, context-sensitive): ``0^a 1^b -> 0^a 1^b 1^a 0^b``.

The input is a run of one binary symbol followed by a run of the other (the first symbol and the
split point drawn per sample); the output is the input followed by its complement. Output j depends
on one input token (j mod n), complemented in the second half: k = 1, coupled id of its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, register_task
from lengen.tasks.seq2seq import Seq2SeqTask


@register_task("interlocked_pairing")
@dataclass
class InterlockedPairing(Seq2SeqTask):
    """0^a 1^b | 0^a 1^b 1^a 0^b $  (the first symbol may be 0 or 1)"""

    symbols: int = param(2, "number of distinct input symbols (only 2 is defined for this task)")
    ids_from_layout: ClassVar[bool] = True
    outputs_copy_by_id: ClassVar[bool] = False  # the second half complements the token at its id

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.symbols != 2:
            raise ConfigError(f"task interlocked_pairing: symbols must be 2, got {self.symbols}")

    def min_length(self) -> int:
        return 2

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return length + 2 if ids == "coupled" else 3 * length + 2

    def output_count(self, length: int) -> int:
        return 2 * length

    def inputs(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        first = rng.integers(0, 2, size=(batch, 1))
        split = rng.integers(1, length, size=(batch, 1))
        return np.where(np.arange(length)[None, :] < split, first, 1 - first)

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        b, n = x.shape
        source = np.tile(np.arange(n), 2)[None].repeat(b, 0)
        return source, [[[j % n] for j in range(2 * n)]] * b

    def output_values(self, x: np.ndarray, source: np.ndarray) -> np.ndarray:
        y = np.take_along_axis(x, source, axis=1)
        y[:, x.shape[1]:] = 1 - y[:, x.shape[1]:]
        return y

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        out = super().recompute_answer(batch)
        n = (out.shape[1] - 1) // 2
        out[:, n:2 * n] = 1 - out[:, n:2 * n]
        return out
