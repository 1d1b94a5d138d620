"""variable_tracking: multi-hop variable assignment (the structure of RULER's variable tracking, our layout).

``length`` statements ``name = rhs`` (3 tokens each) define distinct variables; one chain
``a = c ; b = a ; ... ; z = y`` of ``hops`` copies after a constant assignment sits at random statement
positions (in order), and the other statements are distractors (a fresh variable set to a random
constant, or to an earlier distractor). Then ``? z`` asks for z's value, predicted at z.
The answer depends on the chain's statements (name and rhs of each: 2 (hops + 1) tokens) and on the
query name: k = 2 hops + 3, fixed as the length grows, but spread over the whole input.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, Task, make_batch, register_task


@register_task("variable_tracking")
@dataclass
class VariableTracking(Task):
    """name = rhs statements, one chain of `hops` copies among distractors; ? name -> its value."""

    hops: int = param(2, "number of copy statements in the queried chain")
    variables: int = param(64, "number of distinct variable names (the largest length that can be sampled)")
    values: int = param(10, "number of distinct constant values")

    def __post_init__(self) -> None:
        if self.hops < 0 or self.values < 2 or self.variables < self.hops + 1:
            raise ConfigError(f"task variable_tracking: needs hops >= 0, values >= 2, variables > hops; got "
                              f"{self.hops}, {self.values}, {self.variables}")

    @property
    def equals(self) -> int:
        return self.values

    @property
    def query(self) -> int:
        return self.values + 1

    @property
    def first_name(self) -> int:
        return self.values + 2

    @property
    def vocab_size(self) -> int:
        return self.values + 2 + self.variables

    def token_names(self) -> list[str]:
        return [str(i) for i in range(self.values)] + ["=", "?"] + [f"x{i}" for i in range(self.variables)]

    def chance_accuracy(self) -> float:
        return 1 / self.values

    def min_length(self) -> int:
        return self.hops + 1

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return 3 * length + 4

    def check_length(self, length: int) -> None:
        super().check_length(length)
        if length > self.variables:
            raise ConfigError(f"task variable_tracking: length {length} needs more than variables={self.variables} names")

    def _one(self, rng: random.Random, n: int) -> tuple[list[int], list[int], int]:
        names = [self.first_name + v for v in rng.sample(range(self.variables), n)]
        chain = sorted(rng.sample(range(n), self.hops + 1))
        rhs: list[int] = [0] * n
        earlier: list[int] = []  # distractor names defined so far
        for i in range(n):
            if i in chain:
                at = chain.index(i)
                rhs[i] = rng.randrange(self.values) if at == 0 else names[chain[at - 1]]
            else:
                use_name = earlier and rng.random() < 0.5
                rhs[i] = earlier[rng.randrange(len(earlier))] if use_name else rng.randrange(self.values)
                earlier.append(names[i])
        tokens = [t for i in range(n) for t in (names[i], self.equals, rhs[i])]
        value = rhs[chain[0]]
        deps = [p for i in chain for p in (3 * i, 3 * i + 2)] + [3 * n + 1]
        return [*tokens, self.query, names[chain[-1]], value], deps, value

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        py = random.Random(int(rng.integers(0, 2**63)))  # per-statement draws: Python's generator is cheaper
        rows = [self._one(py, length) for _ in range(batch)]
        tokens = np.array([r[0] for r in rows], dtype=np.int64)
        deps = np.array([r[1] for r in rows], dtype=np.int64)[:, None, :]
        return make_batch(tokens, np.full((batch, 1), 3 * length + 1), deps, prompt_length=3 * length + 2)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        deps = batch.dependencies[:, 0, :]
        values = torch.gather(batch.tokens, 1, deps.clamp(min=0)).tolist()
        out = []
        for row in values:
            assign = dict(zip(row[0:-1:2], row[1:-1:2], strict=True))  # name -> rhs, chain statements only
            name = row[-1]
            while name >= self.first_name:
                name = assign[name]
            out.append([name])
        return torch.tensor(out, dtype=torch.long)
