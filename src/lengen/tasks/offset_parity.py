"""Parity of bits found by *position*: the locality variant of sparse parity.

In ``sparse_parity`` the planted bits are marked by their token ids, so a model can find them without
positions. Here every input token is a bit, and the bits that matter are those at fixed offsets after
a single MARKER token placed at a random position::

    b b b MARKER b b b b b ... b  QUERY  ANSWER      answer = XOR of the bits at marker + o_i

The k offsets are spread evenly over ``1 .. span``: ``span == k`` makes the k bits contiguous (local),
a large span spreads them out. The dependency set is the marker and the k bits: changing any of these
tokens can change the answer, changing any other token cannot.

With ``k_min`` set, each sample draws its own k_b from ``k_min .. k`` and uses the first k_b offsets;
the query token then says how many bits to combine (one query token per k_b). Like sparse_parity's
``k_min``, this is a curriculum: parity of 3 far-apart bits did not leave chance level in 2000 steps
without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, Task, make_batch, register_task

MARKER, FIRST_QUERY = 2, 3


@register_task("offset_parity")
@dataclass
class OffsetParity(Task):
    """XOR of the k bits at fixed offsets (spread over 1..span) after a marker at a random position."""

    k: int = param(2, "number of bits the answer depends on")
    span: int | None = param(None, "largest offset from the marker; offsets spread over 1..span (None: span = k, contiguous)")
    k_min: int | None = param(None, "if set, each sample combines the first k_b offsets, k_b drawn from k_min..k "
                              "(the query token says k_b)")
    k_tokens: int | None = param(None, "query tokens ?1..?k_tokens (None: k of them); set it to the largest k to "
                                 "score a model trained on a range of k at one k with the same vocabulary")

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"task offset_parity: k must be >= 1, got {self.k}")
        if self.k_min is not None and not 1 <= self.k_min <= self.k:
            raise ConfigError(f"task offset_parity: k_min ({self.k_min}) must be between 1 and k ({self.k})")
        if self.span is not None and self.span < self.k:
            raise ConfigError(f"task offset_parity: span ({self.span}) is smaller than k ({self.k})")
        if self.k_tokens is not None and self.k_tokens < self.k:
            raise ConfigError(f"task offset_parity: k_tokens ({self.k_tokens}) must be at least k ({self.k})")

    @property
    def largest_offset(self) -> int:
        return self.span if self.span is not None else self.k

    @property
    def offsets(self) -> np.ndarray:
        if self.k == 1:
            return np.array([self.largest_offset])
        return np.round(np.linspace(1, self.largest_offset, self.k)).astype(np.int64)

    @property
    def vocab_size(self) -> int:
        return FIRST_QUERY + (self.k_tokens or self.k)  # bits, marker, one query token per number of bits

    def chance_accuracy(self) -> float:
        return 0.5

    def min_length(self) -> int:
        return self.largest_offset + 1

    def token_names(self) -> list[str]:
        return ["0", "1", "M", *[f"?{i}" for i in range(1, (self.k_tokens or self.k) + 1)]]

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        tokens = np.empty((batch, length + 2), dtype=np.int64)
        tokens[:, :length] = rng.integers(0, 2, size=(batch, length))
        marker = rng.integers(0, length - self.largest_offset, size=(batch, 1))
        np.put_along_axis(tokens, marker, MARKER, axis=1)
        ks = rng.integers(self.k_min, self.k + 1, size=(batch, 1)) if self.k_min is not None \
            else np.full((batch, 1), self.k)
        used = np.arange(self.k)[None, :] < ks
        bit_positions = marker + self.offsets[None, :]
        answer = np.where(used, np.take_along_axis(tokens, bit_positions, 1), 0).sum(axis=1) % 2
        tokens[:, length] = FIRST_QUERY + ks[:, 0] - 1
        tokens[:, length + 1] = answer
        deps = np.concatenate([marker, np.where(used, bit_positions, -1)], axis=1)
        return make_batch(tokens, np.full((batch, 1), length), deps[:, None, :], prompt_length=length + 1)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        deps = batch.dependencies[:, 0, :]
        dep_tokens = torch.gather(batch.tokens, 1, deps.clamp(min=0))
        bits = torch.where((dep_tokens == MARKER) | (deps < 0), 0, dep_tokens)
        return (bits.sum(dim=1) % 2)[:, None]
