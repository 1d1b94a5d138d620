"""binary_multiplication (Delétang et al. 2023, context-sensitive): ``a * b = c`` in binary.

Layout ``a (MSB first) * b (MSB first) = c (LSB first, |a| + |b| bits) EOS``; the longer operand has
``length`` bits, the shorter a bit count drawn per batch from 1..length (which one is longer is drawn
per batch too). Product bit j is bit j of ``(a mod 2^(j+1)) * (b mod 2^(j+1))``: it depends on every
operand bit of significance <= j (slots 2s and 2s + 1 hold a_s and b_s, -1 where the operand is
shorter), so k grows with j and with the length: dense. No natural coupling (the carry mixes all lower
significances), so the task has no coupled ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks.base import Batch, Task, register_task
from lengen.tasks.layouts import answer_batch, bits_msb_first, to_int

TIMES, EQUALS, EOS = 2, 3, 4


@register_task("binary_multiplication")
@dataclass
class BinaryMultiplication(Task):
    """a * b = c in binary, product least significant bit first."""

    multi_token = True

    @property
    def vocab_size(self) -> int:
        return 5

    def token_names(self) -> list[str]:
        return ["0", "1", "*", "=", "$"]

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return 4 * length + 4

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        n = length
        short = int(rng.integers(1, n + 1))
        na, nb = (n, short) if rng.random() < 0.5 else (short, n)
        a, b = bits_msb_first(rng, batch, na), bits_msb_first(rng, batch, nb)
        m = na + nb
        products = [to_int(x) * to_int(y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
        c = np.array([[(v >> j) & 1 for j in range(m)] + [EOS] for v in products], dtype=np.int64)
        prompt = np.concatenate([a, np.full((batch, 1), TIMES), b, np.full((batch, 1), EQUALS)], axis=1)
        a_at = [na - 1 - s if s < na else -1 for s in range(m)]  # token index of a_s
        b_at = [na + nb - s if s < nb else -1 for s in range(m)]
        deps = np.full((m + 1, 2 * m), -1, dtype=np.int64)
        for j in range(m):
            for s in range(j + 1):
                deps[j, 2 * s], deps[j, 2 * s + 1] = a_at[s], b_at[s]
        return answer_batch(prompt, c, np.broadcast_to(deps, (batch, *deps.shape)))

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        deps = batch.dependencies
        vals = torch.gather(batch.tokens[:, None, :].expand(-1, deps.shape[1], -1), 2, deps.clamp(min=0))
        table: list[list[list[int]]] = torch.where(deps >= 0, vals, 0).tolist()
        out = []
        for row in table:
            bits = []
            for j, slots in enumerate(row[:-1]):
                a = sum(slots[2 * s] << s for s in range(len(slots) // 2))
                b = sum(slots[2 * s + 1] << s for s in range(len(slots) // 2))
                bits.append((a * b >> j) & 1)
            out.append([*bits, EOS])
        return torch.tensor(out, dtype=torch.long)
