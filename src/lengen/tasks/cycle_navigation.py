"""cycle_navigation (Delétang et al. 2023, regular): walk a cycle of ``states`` states from state 0.

Each input token is a move (stay, one step forward, one step back); the answer is the final state.
Every move counts, so the dependency set is the whole input (dense, k = n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, Task, register_task
from lengen.tasks.layouts import all_positions, classification_batch, dependency_tokens

STAY, FORWARD, BACK, QUERY = 0, 1, 2, 3  # answers are QUERY + 1 + state


@register_task("cycle_navigation")
@dataclass
class CycleNavigation(Task):
    """moves in {stay, +1, -1} -> final state on a cycle (start at 0)."""

    states: int = param(5, "number of states on the cycle")

    def __post_init__(self) -> None:
        if self.states < 2:
            raise ConfigError(f"task cycle_navigation: states must be >= 2, got {self.states}")

    @property
    def vocab_size(self) -> int:
        return QUERY + 1 + self.states

    def token_names(self) -> list[str]:
        return ["=", "+", "-", "?", *[f"s{i}" for i in range(self.states)]]

    def chance_accuracy(self) -> float:
        return 1 / self.states

    def _final_state(self, moves: np.ndarray | torch.Tensor, valid: np.ndarray | torch.Tensor) -> np.ndarray:
        moves, valid = np.asarray(moves), np.asarray(valid)
        steps = np.where(valid, np.select([moves == FORWARD, moves == BACK], [1, -1], 0), 0)
        return steps.sum(axis=1) % self.states

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        x = rng.integers(0, 3, size=(batch, length))
        state = self._final_state(x, np.ones_like(x, dtype=bool))
        return classification_batch(x, QUERY + 1 + state, all_positions(batch, length), QUERY)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        values, valid = dependency_tokens(batch)
        return torch.from_numpy(QUERY + 1 + self._final_state(values, valid))[:, None]
