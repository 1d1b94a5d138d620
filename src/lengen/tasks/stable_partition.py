"""stable_partition: the tokens of the "keep" alphabet in order, then all the others in order.

Given the previous output's source p, the next output is the nearest token after p of the same class
(kept or dropped): its dependency set is the tokens from p + 1 to it. At the switch (p is the last kept
token) it is the *first* dropped token of the input: the set is the tokens from the start to it, plus
the tokens after p that show no kept token is left. Both are found by a few content tests however far
apart the tokens are; gaps grow with n.

With ``kept: fixed`` (the default) every input of n tokens keeps round(keep_fraction * n), as in
filter_copy, so the step of the switch follows from n alone; ``kept: random`` draws the kept count of
each input uniformly from 1..n-1 (both classes present), so it can only be read from the content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, register_task
from lengen.tasks.filter_copy import FilterCopy


@register_task("stable_partition")
@dataclass
class StablePartition(FilterCopy):
    """x_1..x_n | the x_i < keep in order, then the x_i >= keep in order $  (round(keep_fraction * n) kept)"""

    kept: str = param("fixed", "'fixed': round(keep_fraction * n) kept tokens in every input of n; 'random': "
                               "each input keeps 1..n-1 tokens, drawn uniformly, so the switch step is not "
                               "a function of n")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kept not in ("fixed", "random"):
            raise ConfigError(f"task stable_partition: kept must be 'fixed' or 'random', got {self.kept!r}")

    def output_count(self, length: int) -> int:
        return length

    def inputs(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        if self.kept == "fixed" or length < 2:
            return super().inputs(rng, batch, length)
        count = rng.integers(1, length, size=(batch, 1))  # 1..n-1 kept tokens per input
        kept = rng.random((batch, length)).argsort(axis=1).argsort(axis=1) < count  # a random subset each
        return np.where(kept, rng.integers(0, self.keep, size=(batch, length)),
                        rng.integers(self.keep, self.symbols, size=(batch, length)))

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        b, n = x.shape
        kept = x < self.keep
        source = np.argsort(~kept, axis=1, kind="stable")  # kept first, each class in input order
        deps = []
        for row, m_kept in zip(source.tolist(), kept.sum(axis=1).tolist(), strict=True):
            sets, prev = [], -1
            for j, q in enumerate(row):
                if j == m_kept and j > 0:  # the switch: first dropped token, and nothing kept after p
                    sets.append(sorted(set(range(q + 1)) | set(range(prev + 1, n))))
                else:
                    sets.append(list(range(prev + 1, q + 1)))
                prev = q
            deps.append(sets)
        return source, deps

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        """Output a is the first kept (a < number kept) or first dropped token of its set; EOS last.

        Which phase an output is in (kept or dropped) is conditioning, like the previous source p that
        the sets are conditional on: it is read from the input's kept count, a constant of n with
        ``kept: fixed`` and of each input with ``kept: random``."""
        deps = batch.dependencies
        n = batch.prompt_length - 1
        m_kept = (batch.tokens[:, :n] < self.keep).sum(1, keepdim=True)  # [B, 1]: each input's own count
        values = torch.gather(batch.tokens[:, None, :].expand(-1, deps.shape[1], -1), 2, deps.clamp(min=0))
        phase_kept = (torch.arange(deps.shape[1])[None, :] < m_kept)[:, :, None]
        match = (deps >= 0) & ((values < self.keep) == phase_kept)
        order = torch.where(match, deps, deps.max() + 1 + batch.tokens.shape[1])
        pick = order.argmin(-1, keepdim=True)
        out = values.gather(2, pick)[..., 0]
        return torch.where(match.any(-1), out, torch.full_like(out, self.eos))
