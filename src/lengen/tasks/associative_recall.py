"""associative_recall: multi-query key-value lookup (the MQAR probe of Arora et al. 2023, our layout).

Layout ``k_1 v_1 .. k_n v_n | q_1 a_1 .. q_n a_n``: n distinct keys with random values, then every
key queried once in random order; a_i is the value stored with q_i, predicted at q_i (the queries are
input tokens, so answers are scored with teacher forcing, one prediction per query). Each answer
depends on three tokens (k = 3): the query, the matching key and its value; the key is found by
content, at a distance that grows with n. Coupled ids give each pair (k_i, v_i) the id i and each
query (and its answer) the id of its key, so the lookup is at coupled-id distance 0 -- but that id
needs the answer's key, so feeding it is an oracle (ids_from_layout False). Chance (exact match of
all n answers by guessing) is values**-n, negligible, so it keeps the base class's 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, Task, make_batch, register_task


@register_task("associative_recall")
@dataclass
class AssociativeRecall(Task):
    """k1 v1 .. kn vn | q1 a1 .. qn an: every key queried once (length = number of pairs)."""

    keys: int = param(64, "number of distinct key tokens (the largest length that can be sampled)")
    values: int = param(16, "number of distinct value tokens")

    def __post_init__(self) -> None:
        if self.keys < 1 or self.values < 2:
            raise ConfigError(f"task associative_recall: needs keys >= 1 and values >= 2, got {self.keys}, {self.values}")

    @property
    def sep(self) -> int:
        return self.keys + self.values

    @property
    def vocab_size(self) -> int:
        return self.keys + self.values + 1

    def token_names(self) -> list[str]:
        return [f"k{i}" for i in range(self.keys)] + [f"v{i}" for i in range(self.values)] + ["|"]

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return length + 2 if ids == "coupled" else 4 * length + 2

    def check_length(self, length: int) -> None:
        super().check_length(length)
        if length > self.keys:
            raise ConfigError(f"task associative_recall: length {length} needs more than keys={self.keys} keys")

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        n = length
        keys = np.argsort(rng.random((batch, self.keys)), axis=1)[:, :n]  # n distinct keys per sample
        values = self.keys + rng.integers(0, self.values, size=(batch, n))
        order = np.argsort(rng.random((batch, n)), axis=1)  # which pair each query asks for
        queries = np.take_along_axis(keys, order, 1)
        answers = np.take_along_axis(values, order, 1)
        tokens = np.empty((batch, 4 * n + 1), dtype=np.int64)
        tokens[:, 0:2 * n:2], tokens[:, 1:2 * n:2] = keys, values
        tokens[:, 2 * n] = self.sep
        tokens[:, 2 * n + 1::2], tokens[:, 2 * n + 2::2] = queries, answers
        answer_index = np.broadcast_to(2 * n + 1 + 2 * np.arange(n), (batch, n))
        deps = np.stack([2 * order, 2 * order + 1, answer_index], axis=2)  # key, value, query
        pair_ids = np.arange(1, n + 1)[None].repeat(batch, 0)
        ids = np.concatenate([pair_ids.repeat(2, 1), np.full((batch, 1), n + 1), (order + 1).repeat(2, 1)], axis=1)
        return make_batch(tokens, answer_index, deps, prompt_length=2 * n + 2, coupled_ids=ids)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        deps = batch.dependencies
        key, value, query = (torch.gather(batch.tokens, 1, deps[:, :, i]) for i in range(3))
        if not bool((key == query).all()):
            raise AssertionError("a recorded key does not match its query")
        return value
