"""missing_duplicate (Delétang et al. 2023, context-sensitive): ``w w`` with one token blanked; name it.

Layout ``w_1..w_n w_1..w_n ? a`` where one of the 2n tokens is replaced by MISSING; the answer is the
token at the blank's counterpart in the other copy. It depends on two tokens (the blank, which says
where to look, and its counterpart: k = 2) n positions apart; coupling gives both copies of w_i the id
i, so the two are at coupled-id distance 0 (ids from the layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, Task, register_task
from lengen.tasks.layouts import classification_batch, dependency_tokens


@register_task("missing_duplicate")
@dataclass
class MissingDuplicate(Task):
    """w w with one token replaced by '_' -> the missing token (length = |w|)."""

    symbols: int = param(2, "number of distinct symbols in w")
    ids_from_layout: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.symbols < 2:
            raise ConfigError(f"task missing_duplicate: symbols must be >= 2, got {self.symbols}")

    @property
    def missing(self) -> int:
        return self.symbols

    @property
    def vocab_size(self) -> int:
        return self.symbols + 2

    def token_names(self) -> list[str]:
        return [str(i) for i in range(self.symbols)] + ["_", "?"]

    def chance_accuracy(self) -> float:
        return 1 / self.symbols

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return length + 2 if ids == "coupled" else 2 * length + 3

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        n = length
        w = rng.integers(0, self.symbols, size=(batch, n))
        x = np.concatenate([w, w], axis=1)
        blank = rng.integers(0, 2 * n, size=(batch, 1))
        answers = np.take_along_axis(x, blank, 1)[:, 0]
        np.put_along_axis(x, blank, self.missing, axis=1)
        counterpart = (blank + n) % (2 * n)
        deps = np.sort(np.concatenate([blank, counterpart], axis=1), axis=1)
        ids = np.concatenate([np.tile(np.arange(1, n + 1), 2), [n + 1, n + 1]])
        return classification_batch(x, answers, deps, self.missing + 1,
                                    coupled_ids=np.broadcast_to(ids, (batch, 2 * n + 2)))

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        values, _ = dependency_tokens(batch)
        return torch.where(values[:, 0] == self.missing, values[:, 1], values[:, 0])[:, None]
