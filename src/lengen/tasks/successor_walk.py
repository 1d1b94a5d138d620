"""successor_walk: follow colours 0, 1, 2, ... through the input, each time to the nearest later match.

Every input token has a colour and a value (token id = colour * values + value). The output is the
first token of colour 0, then the first token after it of colour 1, then the first after that of
colour 2, ... (colours mod ``colours``), until the next colour no longer occurs; the outputs are the
whole tokens, so their values must be read from where the walk lands. Which token is a candidate
depends on the previous output's colour, not on a fixed alphabet (as in ``filter_copy``). Given the
previous output's source p, the next output depends on the tokens from p + 1 to the one found: a
short local scan, sparse, with gaps that grow with n. Inputs are built so that the walk has exactly
round(walk_fraction * n) steps (batches stay dense).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import random_subsets, register_task
from lengen.tasks.seq2seq import Seq2SeqTask


@register_task("successor_walk")
@dataclass
class SuccessorWalk(Seq2SeqTask):
    """x_1..x_n | the walk through colours 0, 1, 2, ... (mod colours), each the first match after the last $"""

    symbols: int = param(12, "number of distinct input tokens: colours x values")
    colours: int = param(3, "number of colours (the walk wraps around modulo it); must divide symbols")
    walk_fraction: float = param(0.5, "walk steps per input token (fixed per length)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.colours < 2 or self.symbols % self.colours:
            raise ConfigError(f"task successor_walk: colours must be >= 2 and divide symbols ({self.symbols}), "
                              f"got {self.colours}")
        if not 0 < self.walk_fraction <= 1:
            raise ConfigError(f"task successor_walk: walk_fraction must be in (0, 1], got {self.walk_fraction}")

    @property
    def values(self) -> int:
        return self.symbols // self.colours

    def output_count(self, length: int) -> int:
        return max(1, round(self.walk_fraction * length))

    def inputs(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        steps = random_subsets(rng, batch, length, self.output_count(length))
        is_step = np.zeros((batch, length), dtype=np.int64)
        np.put_along_axis(is_step, steps, 1, axis=1)
        # the colour the walk is looking for at each position: how many steps lie before it
        sought = (np.cumsum(is_step, axis=1) - is_step) % self.colours
        other = rng.integers(0, self.colours - 1, size=(batch, length))
        other = other + (other >= sought)  # any colour but the sought one
        colour = np.where(is_step == 1, sought, other)
        return colour * self.values + rng.integers(0, self.values, size=(batch, length))

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        sources, deps = [], []
        for row in (x // self.values).tolist():
            src: list[int] = []
            sets: list[list[int]] = []
            want, start = 0, 0
            for i, colour in enumerate(row):
                if colour == want:
                    sets.append(list(range(start, i + 1)))
                    src.append(i)
                    want, start = (want + 1) % self.colours, i + 1
            sources.append(src)
            deps.append(sets)
        return np.array(sources, dtype=np.int64).reshape(x.shape[0], -1), deps
