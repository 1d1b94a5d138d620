"""squeeze: collapse every run of repeated tokens to one token (``tr -s``).

The outputs are the first tokens of the runs, so which input an output copies depends on the input's
content (an oracle for plain coupling; PPC predicts it). Given the previous output's source p, the next
output is the first token after p that differs from x_p: its dependency set is x_p .. that token, a
short local run (sparse), compared by content rather than by a fixed alphabet as in ``filter_copy``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import random_subsets, register_task
from lengen.tasks.seq2seq import Seq2SeqTask


@register_task("squeeze")
@dataclass
class Squeeze(Seq2SeqTask):
    """x_1..x_n | one token per run of equal tokens $  (exactly ceil(run_fraction * n) runs)"""

    symbols: int = param(6, "number of distinct input symbols")
    run_fraction: float = param(0.5, "number of runs per input token (fixed per length)")
    run_fraction_min: float | None = param(None, "if set, each batch draws its runs per token uniformly from "
                                                 "[run_fraction_min, run_fraction]: longer runs in training")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.run_fraction <= 1:
            raise ConfigError(f"task squeeze: run_fraction must be in (0, 1], got {self.run_fraction}")
        if self.run_fraction_min is not None and not 0 < self.run_fraction_min <= self.run_fraction:
            raise ConfigError(f"task squeeze: run_fraction_min must be in (0, run_fraction], got {self.run_fraction_min}")

    def output_count(self, length: int, fraction: float | None = None) -> int:
        return max(1, int(np.ceil((fraction or self.run_fraction) * length)))

    def inputs(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        # one fraction per batch keeps batches dense (every row has the same number of outputs)
        fraction = rng.uniform(self.run_fraction_min, self.run_fraction) if self.run_fraction_min else None
        m = self.output_count(length, fraction)
        starts = np.zeros((batch, length), dtype=np.int64)
        starts[:, 0] = 1
        if m > 1:
            later = random_subsets(rng, batch, length - 1, m - 1) + 1
            np.put_along_axis(starts, later, 1, axis=1)
        # each run's symbol differs from the previous run's: a random nonzero step modulo symbols
        steps = np.where(starts == 1, rng.integers(1, self.symbols, size=(batch, length)), 0)
        steps[:, 0] = rng.integers(0, self.symbols, size=batch)
        return np.cumsum(steps, axis=1) % self.symbols

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        first = np.ones_like(x, dtype=bool)
        first[:, 1:] = x[:, 1:] != x[:, :-1]
        m = int(first[0].sum())
        source = np.nonzero(first)[1].reshape(x.shape[0], m)
        deps = []
        for row in source.tolist():
            deps.append([[0]] + [list(range(p, q + 1)) for p, q in zip(row[:-1], row[1:], strict=True)])
        return source, deps
