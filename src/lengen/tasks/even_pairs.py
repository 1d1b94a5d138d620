"""even_pairs (Delétang et al. 2023, regular): is the number of ``ab`` plus ``ba`` pairs even?

Each change of letter is one such pair, so the count is even exactly when the string starts and ends
with the same letter: the answer depends on two tokens (k = 2) whose distance is the whole input
(span n - 1, growing with length). Sparse but not local.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks.base import Batch, Task, register_task
from lengen.tasks.layouts import classification_batch, dependency_tokens

QUERY, ODD, EVEN = 2, 3, 4


@register_task("even_pairs")
@dataclass
class EvenPairs(Task):
    """a/b string -> is the number of 'ab' and 'ba' pairs even (first letter == last letter)?"""

    @property
    def vocab_size(self) -> int:
        return 5

    def token_names(self) -> list[str]:
        return ["a", "b", "?", "odd", "even"]

    def chance_accuracy(self) -> float:
        return 0.5

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        x = rng.integers(0, 2, size=(batch, length))
        pairs = (x[:, 1:] != x[:, :-1]).sum(axis=1)
        answers = np.where(pairs % 2 == 0, EVEN, ODD)
        deps = np.broadcast_to(np.array([0, length - 1]) if length > 1 else np.array([0, -1]), (batch, 2))
        return classification_batch(x, answers, deps, QUERY)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        values, valid = dependency_tokens(batch)
        last = torch.where(valid[:, 1], values[:, 1], values[:, 0])
        return torch.where(values[:, 0] == last, EVEN, ODD)[:, None]
