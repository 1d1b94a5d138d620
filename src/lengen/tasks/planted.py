"""k-sparse planted-correlation tasks (science.md): background noise with k planted symbols.

Layout of one sample of length L (sequence length L + 2)::

    x_0 ... x_{L-1}  QUERY  ANSWER

Every x_i is a background token (ids ``0 .. noise_vocab-1``) except at the k planted positions S,
which hold symbol tokens (ids ``noise_vocab .. noise_vocab+symbols-1``), so planted tokens are
recognisable by content. The answer is ``f(symbols at S)``, written as a symbol token. S lies inside a
random window of ``window`` consecutive positions (anywhere when ``window`` is None). With ``k_min``
set, each sample draws its own k uniformly from ``k_min .. k`` (training one model on a range of k is
a curriculum: the samples with few planted tokens teach where to look).

The query token names the sample's k (``?k``, one query token per k in 1..k_tokens, k_tokens = k by
default), which matters when k varies per sample.
Without that, a model trained on a range of k must also *count* the planted tokens to know how many to
combine, and counting from an attention average breaks at new lengths for reasons that have nothing to
do with sparsity (the review behind issue 13 found whole groups of samples with the same number of
1-bits failing together). Version 0 of these tasks had one query token for every k (``k_tokens: 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, Task, make_batch, random_subsets, register_task

FUNCTIONS = ("sum_mod", "majority", "first", "last", "lookup")


@dataclass
class _PlantedBase(Task):
    """Shared layout; subclasses define the answer function."""

    k: int
    k_min: int | None
    noise_vocab: int
    window: int | None
    k_tokens: int | None
    symbols: ClassVar[int] = 2
    version: ClassVar[int] = 1  # 1: the query token names the sample's k when k varies (k_tokens)

    @classmethod
    def legacy_args(cls, version: int) -> dict[str, Any]:
        return {"k_tokens": 0} if version < 1 else {}

    def _n_symbols(self) -> int:
        return self.symbols

    def _validate(self) -> None:
        if self.k < 1:
            raise ConfigError(f"task {self.name}: k must be >= 1, got {self.k}")
        if self.k_min is not None and not 1 <= self.k_min <= self.k:
            raise ConfigError(f"task {self.name}: k_min ({self.k_min}) must be between 1 and k ({self.k})")
        if self.noise_vocab < 1:
            raise ConfigError(f"task {self.name}: noise_vocab must be >= 1, got {self.noise_vocab}")
        if self.window is not None and self.window < self.largest_k:
            raise ConfigError(
                f"task {self.name}: window ({self.window}) is smaller than k ({self.largest_k})"
            )
        if self.k_tokens is not None and self.k_tokens != 0 and self.k_tokens < self.k:
            raise ConfigError(f"task {self.name}: k_tokens ({self.k_tokens}) must be 0 (the query does not name k) "
                              f"or at least k ({self.k})")

    @property
    def largest_k(self) -> int:
        return self.k

    @property
    def n_query_tokens(self) -> int:
        """Query tokens ?1..?n name the sample's k (n = k_tokens, or k when unset); one ? with k_tokens 0."""
        if self.k_tokens is None:
            return self.k
        return max(1, self.k_tokens)

    @property
    def names_k(self) -> bool:
        return self.k_tokens != 0

    @property
    def query_token(self) -> int:
        return self.noise_vocab + self._n_symbols()

    @property
    def vocab_size(self) -> int:
        return self.noise_vocab + self._n_symbols() + self.n_query_tokens

    def chance_accuracy(self) -> float:
        return 1.0 / self._n_symbols()

    def min_length(self) -> int:
        return self.largest_k

    def token_names(self) -> list[str]:
        queries = [f"?{k}" for k in range(1, self.n_query_tokens + 1)] if self.names_k else ["?"]
        return [f"n{i}" for i in range(self.noise_vocab)] + [f"s{i}" for i in range(self._n_symbols())] + queries

    # -- the answer function, on symbols [B, K] with a validity mask [B, K] (planted in order) --
    def answer_of(self, symbols: np.ndarray, valid: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def dependency_columns(self, k_per_sample: np.ndarray, kmax: int) -> np.ndarray:
        """Which of the (sorted) planted positions the answer depends on, as a [B, D] column index."""
        return np.broadcast_to(np.arange(kmax), (len(k_per_sample), kmax))

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        kmax = self.largest_k
        ks = rng.integers(self.k_min, kmax + 1, size=batch) if self.k_min is not None else np.full(batch, self.k)
        width = length if self.window is None else min(self.window, length)
        start = rng.integers(0, length - width + 1, size=(batch, 1))
        # kmax distinct offsets in the window; samples with smaller k keep the first k_b of them
        offsets = random_subsets(rng, batch, width, kmax)
        offsets = np.take_along_axis(offsets, rng.permuted(np.tile(np.arange(kmax), (batch, 1)), axis=1), 1)
        valid = np.arange(kmax)[None, :] < ks[:, None]
        positions = np.where(valid, start + offsets, np.iinfo(np.int64).max)
        positions = np.sort(positions, axis=1)
        valid = np.arange(kmax)[None, :] < ks[:, None]  # sorting moved the invalid ones last
        positions = np.where(valid, positions, -1)

        symbols = rng.integers(0, self._n_symbols(), size=(batch, kmax))
        answer = self.answer_of(symbols, valid)

        tokens = np.empty((batch, length + 2), dtype=np.int64)
        tokens[:, :length] = rng.integers(0, self.noise_vocab, size=(batch, length))
        rows = np.broadcast_to(np.arange(batch)[:, None], positions.shape)
        tokens[rows[valid], positions[valid]] = self.noise_vocab + symbols[valid]
        tokens[:, length] = self.query_token + (ks - 1 if self.names_k else 0)
        tokens[:, length + 1] = self.noise_vocab + answer

        cols = self.dependency_columns(ks, kmax)
        deps = np.take_along_axis(positions, cols, 1)
        return make_batch(tokens, np.full((batch, 1), length), deps[:, None, :], prompt_length=length + 1)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        deps = batch.dependencies[:, 0, :]
        valid = deps >= 0
        symbols = torch.gather(batch.tokens, 1, deps.clamp(min=0)) - self.noise_vocab
        answer = self.answer_of(symbols.numpy(), valid.numpy())
        return torch.from_numpy(answer + self.noise_vocab)[:, None]


def sum_mod(symbols: np.ndarray, valid: np.ndarray, p: int) -> np.ndarray:
    return np.where(valid, symbols, 0).sum(axis=1) % p


@register_task("planted")
@dataclass
class PlantedFunction(_PlantedBase):
    """answer = f(k planted symbols), f in sum_mod, majority, first, last, lookup (seeded table)."""

    k: int = param(2, "number of planted symbols (the largest, when k_min is set)")
    k_min: int | None = param(None, "if set, each sample draws its k uniformly from k_min..k")
    noise_vocab: int = param(8, "number of distinct background tokens")
    window: int | None = param(None, "planted symbols fall in a random window of this width (None: anywhere)")
    k_tokens: int | None = param(None, "query tokens ?1..?k_tokens name the sample's k (None: k of them; 0: one "
                                 "query token that never names k, as in version 0)")
    function: str = param("sum_mod", "answer function: sum_mod | majority | first | last | lookup")
    alphabet: int = param(3, "number of distinct planted symbols p (answers are symbols too)")
    table_seed: int = param(0, "seed of the random lookup table (function=lookup)")

    def __post_init__(self) -> None:
        self._validate()
        if self.function not in FUNCTIONS:
            raise ConfigError(f"task planted: unknown function {self.function!r}; known: {', '.join(FUNCTIONS)}")
        if self.alphabet < 2:
            raise ConfigError(f"task planted: alphabet must be >= 2, got {self.alphabet}")
        self._table: np.ndarray | None = None
        if self.function == "lookup":
            if self.k_min is not None:
                raise ConfigError("task planted: function=lookup needs a fixed k (k_min must be unset)")
            if self.alphabet**self.k > 1_000_000:
                raise ConfigError(f"task planted: lookup table alphabet**k = {self.alphabet**self.k} is too large")
            self._table = np.random.default_rng(self.table_seed).integers(0, self.alphabet, self.alphabet**self.k)

    def _n_symbols(self) -> int:
        return self.alphabet

    def dependency_columns(self, k_per_sample: np.ndarray, kmax: int) -> np.ndarray:
        # first/last read a single planted symbol: the others change nothing when altered
        if self.function == "first":
            return np.zeros((len(k_per_sample), 1), dtype=np.int64)
        if self.function == "last":
            return (k_per_sample - 1)[:, None]
        return super().dependency_columns(k_per_sample, kmax)

    def answer_of(self, symbols: np.ndarray, valid: np.ndarray) -> np.ndarray:
        p = self.alphabet
        if self.function == "sum_mod":
            return sum_mod(symbols, valid, p)
        if self.function == "majority":  # most frequent symbol, ties to the smallest
            counts = (np.where(valid, symbols, -1)[:, :, None] == np.arange(p)).sum(axis=1)
            return counts.argmax(axis=1)
        if self.function == "first":
            return symbols[:, 0].copy()
        if self.function == "last":
            return symbols[np.arange(len(symbols)), valid.sum(axis=1) - 1]
        assert self._table is not None
        return self._table[(symbols * p ** np.arange(symbols.shape[1])).sum(axis=1)]
