"""filter_copy: copy only the tokens of the "keep" alphabet, dropping the others.

Which input an output copies depends on the input's content, so its coupled id needs the answer (an
oracle for plain coupling; PPC predicts it). Given the previous output's source p, the next output is
the first kept token after p: its dependency set is the tokens from p + 1 to that token, a short local
run, which is the sparse case where the theory expects PPC to generalize.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import random_subsets, register_task
from lengen.tasks.seq2seq import Seq2SeqTask


@register_task("filter_copy")
@dataclass
class FilterCopy(Seq2SeqTask):
    """x_1..x_n | the x_i with x_i < keep, in order $  (exactly round(keep_fraction * n) of them)"""

    keep: int = param(5, "symbols 0..keep-1 are copied, the others dropped")
    keep_fraction: float = param(0.5, "fraction of the input that is kept (fixed per length)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.keep < self.symbols:
            raise ConfigError(f"task filter_copy: keep must be in [1, symbols), got {self.keep}")
        if not 0 < self.keep_fraction <= 1:
            raise ConfigError(f"task filter_copy: keep_fraction must be in (0, 1], got {self.keep_fraction}")

    def kept_count(self, length: int) -> int:
        return max(1, round(self.keep_fraction * length))

    def output_count(self, length: int) -> int:
        return self.kept_count(length)

    def inputs(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        x = rng.integers(self.keep, self.symbols, size=(batch, length))
        kept = random_subsets(rng, batch, length, self.kept_count(length))
        np.put_along_axis(x, kept, rng.integers(0, self.keep, size=kept.shape), axis=1)
        return x

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        kept = x < self.keep
        m = int(kept[0].sum())
        source = np.nonzero(kept)[1].reshape(x.shape[0], m)
        deps = []
        for row in source.tolist():
            starts = [-1, *row[:-1]]
            deps.append([list(range(p + 1, q + 1)) for p, q in zip(starts, row, strict=True)])
        return source, deps
