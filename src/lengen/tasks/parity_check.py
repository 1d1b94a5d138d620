"""parity_check (Delétang et al. 2023, regular): is the number of ``b`` in an a/b string even?

Every token can flip the answer, so the dependency set is the whole input: k = n, the dense extreme.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks.base import Batch, Task, register_task
from lengen.tasks.layouts import all_positions, classification_batch, dependency_tokens

QUERY, EVEN, ODD = 2, 3, 4


@register_task("parity_check")
@dataclass
class ParityCheck(Task):
    """a/b string -> is the number of b's even?"""

    @property
    def vocab_size(self) -> int:
        return 5

    def token_names(self) -> list[str]:
        return ["a", "b", "?", "even", "odd"]

    def chance_accuracy(self) -> float:
        return 0.5

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        x = rng.integers(0, 2, size=(batch, length))
        return classification_batch(x, EVEN + x.sum(axis=1) % 2, all_positions(batch, length), QUERY)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        values, valid = dependency_tokens(batch)
        return (EVEN + torch.where(valid, values, 0).sum(dim=1) % 2)[:, None]
