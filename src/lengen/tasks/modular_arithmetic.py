"""Modular arithmetic (Delétang et al. 2023): evaluate an expression modulo p.

- ``modular_arithmetic`` (regular): ``d op d op ... d`` with ``length`` operands and ``+ - *`` under the
  usual precedence, no brackets (so the sequence has 2 * length - 1 tokens).
- ``modular_arithmetic_brackets`` (deterministic context-free): a random bracketed expression of exactly
  ``length`` tokens (see ``lengen.tasks.expressions``).
Every token can change the value, so the dependency set is the whole input (dense).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks import expressions as ex
from lengen.tasks.base import Batch, register_task
from lengen.tasks.layouts import all_positions, classification_batch, dependency_tokens


@dataclass
class _ModularTask(ex.ModularVocabTask):
    def expressions(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        p = self.modulus
        x = self.expressions(rng, batch, length)
        answers = np.array([ex.evaluate(row, p) for row in x.tolist()], dtype=np.int64)
        return classification_batch(x, answers, all_positions(batch, x.shape[1]), p + ex.QUERY)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        values, valid = dependency_tokens(batch)
        rows = [[t for t, ok in zip(v, m, strict=True) if ok] for v, m in zip(values.tolist(), valid.tolist(),
                                                                               strict=True)]
        return torch.tensor([[ex.evaluate(row, self.modulus)] for row in rows], dtype=torch.long)


@register_task("modular_arithmetic")
@dataclass
class ModularArithmetic(_ModularTask):
    """d op d op ... d (op in + - *, usual precedence, no brackets) -> value mod p; length = operands."""

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return 2 * length + 2

    def expressions(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        p = self.modulus
        out = np.empty((batch, 2 * length - 1), dtype=np.int64)
        out[:, 0::2] = rng.integers(0, p, size=(batch, length))
        out[:, 1::2] = p + rng.integers(ex.PLUS, ex.TIMES + 1, size=(batch, length - 1))
        return out


@register_task("modular_arithmetic_brackets")
@dataclass
class ModularArithmeticBrackets(_ModularTask):
    """a random bracketed expression of `length` tokens over + - * (and unary minus) -> value mod p."""

    def expressions(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        py = ex.python_rng(rng)
        ops = (ex.PLUS, ex.MINUS, ex.TIMES)
        return np.array([ex.random_expression(py, length, self.modulus, ops) for _ in range(batch)], dtype=np.int64)
