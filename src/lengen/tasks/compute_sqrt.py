"""compute_sqrt (Delétang et al. 2023, context-sensitive): floor of the square root, in binary.

Layout ``x (n bits, MSB first, leading 1) | s (ceil(n / 2) bits, MSB first) EOS``. Because
``floor(sqrt(floor(x / 4^t))) = floor(floor(sqrt(x)) / 2^t)``, the j-th answer bit (t = m - 1 - j bits
from the end) is the last bit of the square root of x's top n - 2t bits: its dependency set is that
prefix, so k grows along the answer and with the length (dense). No natural coupling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks.base import Batch, Task, register_task
from lengen.tasks.layouts import answer_batch, bits_msb_first, to_int

SEP, EOS = 2, 3


@register_task("compute_sqrt")
@dataclass
class ComputeSqrt(Task):
    """x (binary) | floor(sqrt(x)) (binary, MSB first) $"""

    multi_token = True

    @property
    def vocab_size(self) -> int:
        return 4

    def token_names(self) -> list[str]:
        return ["0", "1", "|", "$"]

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return 2 * length + 4

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        n, m = length, (length + 1) // 2
        x = bits_msb_first(rng, batch, n)
        roots = [math.isqrt(to_int(row)) for row in x.tolist()]
        s = np.array([[(r >> (m - 1 - j)) & 1 for j in range(m)] + [EOS] for r in roots], dtype=np.int64)
        deps = np.full((m + 1, n), -1, dtype=np.int64)
        for j in range(m):
            prefix = n - 2 * (m - 1 - j)
            deps[j, :prefix] = np.arange(prefix)
        prompt = np.concatenate([x, np.full((batch, 1), SEP)], axis=1)
        return answer_batch(prompt, s, np.broadcast_to(deps, (batch, *deps.shape)))

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        deps = batch.dependencies
        out = []
        for tokens, sets in zip(batch.tokens.tolist(), deps.tolist(), strict=True):
            row = [math.isqrt(to_int([tokens[i] for i in d if i >= 0])) & 1 for d in sets[:-1]]
            out.append([*row, EOS])
        return torch.tensor(out, dtype=torch.long)
