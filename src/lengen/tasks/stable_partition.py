"""stable_partition: the tokens of the "keep" alphabet in order, then all the others in order.

Given the previous output's source p, the next output is the nearest token after p of the same class
(kept or dropped): its dependency set is the tokens from p + 1 to it. At the switch (p is the last kept
token) it is the *first* dropped token of the input: the set is the tokens from the start to it, plus
the tokens after p that show no kept token is left. Both are found by a few content tests however far
apart the tokens are; gaps grow with n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks.base import Batch, register_task
from lengen.tasks.filter_copy import FilterCopy


@register_task("stable_partition")
@dataclass
class StablePartition(FilterCopy):
    """x_1..x_n | the x_i < keep in order, then the x_i >= keep in order $  (round(keep_fraction * n) kept)"""

    def output_count(self, length: int) -> int:
        return length

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        b, n = x.shape
        kept = x < self.keep
        source = np.argsort(~kept, axis=1, kind="stable")  # kept first, each class in input order
        m_kept = int(kept[0].sum())
        deps = []
        for row in source.tolist():
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
        """Output a is the first kept (a < number kept) or first dropped token of its set; EOS last."""
        deps = batch.dependencies
        n = batch.prompt_length - 1
        m_kept = self.kept_count(n)
        values = torch.gather(batch.tokens[:, None, :].expand(-1, deps.shape[1], -1), 2, deps.clamp(min=0))
        phase_kept = (torch.arange(deps.shape[1]) < m_kept)[None, :, None]
        match = (deps >= 0) & ((values < self.keep) == phase_kept)
        order = torch.where(match, deps, deps.max() + 1 + batch.tokens.shape[1])
        pick = order.argmin(-1, keepdim=True)
        out = values.gather(2, pick)[..., 0]
        return torch.where(match.any(-1), out, torch.full_like(out, self.eos))
