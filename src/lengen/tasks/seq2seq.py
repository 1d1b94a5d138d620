"""Shared layout of the algorithmic tasks with multi-token answers (copy, reverse, sort, filtering...).

A sample of ``length`` n is ``x_1 .. x_n SEP y_1 .. y_m EOS``; the answer is ``y_1 .. y_m EOS`` (m + 1
predictions, all scored). Coupled position ids (Cho et al. 2024) give tokens that must be matched the
same id: ``x_i`` has id i, every output ``y_j`` has the id of the input token it comes from, and SEP and
EOS share the "end" id n + 1 (``boundary_id: end``, the default) or the "start" id 0 (``boundary_id: start``:
the answer then starts where the input starts, so the first output's id is near the separator's in id space
on tasks that read the input from its start). Ids always start at the same place (1); the random start offset used in
training is applied by the position scheme (``learned`` with ``random_offset``) in training mode only,
so the task needs no train/eval flag and evaluation always sees the fixed start.

Dependency sets list token indices. For the content-dependent tasks (filtering, squeezing) they are the
tokens that decide the answer *once the previous output's source position (its coupled id) is known*,
which is the sparsity the theory asks about for Predictive Position Coupling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, Task, make_batch


def pad_sets(sets: list[list[list[int]]]) -> np.ndarray:
    """Ragged [B][A][*] index lists -> [B, A, D] array padded with -1 (D >= 1)."""
    width = max(1, max((len(s) for row in sets for s in row), default=1))
    out = np.full((len(sets), len(sets[0]), width), -1, dtype=np.int64)
    for b, row in enumerate(sets):
        for a, s in enumerate(row):
            out[b, a, : len(s)] = s
    return out


@dataclass
class Seq2SeqTask(Task):
    """Base of the symbol-sequence tasks: subclasses choose the inputs and which input each output copies."""

    symbols: int = param(10, "number of distinct input symbols")
    boundary_id: str = param("end", "coupled id of the separator and EOS: 'end' (n + 1) or 'start' (0)")

    multi_token: ClassVar[bool] = True
    outputs_copy_by_id: ClassVar[bool] = True  # each output token is the input token at its id

    def __post_init__(self) -> None:
        if self.symbols < 2:
            raise ConfigError(f"task {self.name}: symbols must be >= 2, got {self.symbols}")
        if self.boundary_id not in ("end", "start"):
            raise ConfigError(f"task {self.name}: boundary_id must be 'end' or 'start', got {self.boundary_id!r}")

    @property
    def sep(self) -> int:
        return self.symbols

    @property
    def eos(self) -> int:
        return self.symbols + 1

    @property
    def vocab_size(self) -> int:
        return self.symbols + 2

    def token_names(self) -> list[str]:
        return [str(i) for i in range(self.symbols)] + ["|", "$"]

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return length + 2 if ids == "coupled" else 2 * length + 2

    def output_count(self, length: int) -> int:
        """m, the number of output symbols for ``length`` inputs (fixed per length, so batches are dense)."""
        return length

    def inputs(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        return rng.integers(0, self.symbols, size=(batch, length))

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        """The input index each output copies, [B, m], and each output's dependency set (input indices)."""
        raise NotImplementedError

    def output_values(self, x: np.ndarray, source: np.ndarray) -> np.ndarray:
        """The output symbols, [B, m]: by default a copy of the input each output comes from."""
        return np.take_along_axis(x, source, axis=1)

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        x = self.inputs(rng, batch, length)
        source, deps = self.align(x)
        m = source.shape[1]
        y = self.output_values(x, source)
        b_sep = np.full((batch, 1), self.sep)
        tokens = np.concatenate([x, b_sep, y, np.full((batch, 1), self.eos)], axis=1)
        end = np.full((batch, 1), length + 1 if self.boundary_id == "end" else 0)
        coupled = np.concatenate([np.arange(1, length + 1)[None].repeat(batch, 0), end, source + 1, end], axis=1)
        answer_index = np.arange(length, length + m + 1)[None].repeat(batch, 0)
        dependencies = pad_sets([row + [[]] for row in deps])  # EOS depends on no token's value
        return make_batch(tokens, answer_index, dependencies, prompt_length=length + 1, coupled_ids=coupled)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        """Default: each output is the token at the last position of its dependency set; EOS last."""
        deps = batch.dependencies
        last = deps.max(dim=-1).values
        values = torch.gather(batch.tokens, 1, last.clamp(min=0))
        return torch.where(last >= 0, values, torch.full_like(values, self.eos))
