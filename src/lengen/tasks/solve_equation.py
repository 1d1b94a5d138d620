"""solve_equation (Delétang et al. 2023, deterministic context-free): find x in ``expr(x) = v`` mod p.

``expr`` is a random bracketed expression of ``length`` tokens over ``+``, ``-`` and unary minus in
which one digit is replaced by ``x``; without ``*`` the coefficient of x is +-1, so the solution is
unique. Layout: ``expr = v ? x``. The answer depends on every token (dense).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks import expressions as ex
from lengen.tasks.base import Batch, register_task
from lengen.tasks.layouts import all_positions, classification_batch, dependency_tokens


@register_task("solve_equation")
@dataclass
class SolveEquation(ex.ModularVocabTask):
    """expr(x) = v (mod p, + - and brackets, `length` tokens on the left) -> x."""

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        p = self.modulus
        rows, answers = [], []
        py = ex.python_rng(rng)
        for _ in range(batch):
            expr = ex.place_variable(py, ex.random_expression(py, length, p, (ex.PLUS, ex.MINUS)), p)
            x = py.randrange(p)
            rows.append([*expr, p + ex.EQUALS, ex.evaluate(expr, p, x)])
            answers.append(x)
        inputs = np.array(rows, dtype=np.int64)
        return classification_batch(inputs, np.array(answers), all_positions(batch, length + 2), p + ex.QUERY)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        values, valid = dependency_tokens(batch)
        p, out = self.modulus, []
        for v, m in zip(values.tolist(), valid.tolist(), strict=True):
            row = [t for t, ok in zip(v, m, strict=True) if ok]
            expr, target = row[:-2], row[-1]
            out.append([next(x for x in range(p) if ex.evaluate(expr, p, x) == target)])
        return torch.tensor(out, dtype=torch.long)
