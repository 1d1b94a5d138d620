"""filter_reverse: the tokens of the "keep" alphabet, last first (filter_copy read backwards).

The first output is the last kept token, found from the separator (id n + 1 with the default
``boundary_id: end``); each later output is the nearest kept token *behind* the previous output's
source p. Given p, the output depends on the tokens from that kept token q up to p - 1: a short run,
sparse, whose length (the gap) grows with n at evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks.base import Batch, register_task
from lengen.tasks.filter_copy import FilterCopy


@register_task("filter_reverse")
@dataclass
class FilterReverse(FilterCopy):
    """x_1..x_n | the x_i with x_i < keep, last first $"""

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        source, _ = super().align(x)
        source = source[:, ::-1].copy()
        deps = []
        for row in source.tolist():
            starts = [x.shape[1], *row[:-1]]  # scanning backwards from the separator at index n
            deps.append([list(range(q, p)) for p, q in zip(starts, row, strict=True)])
        return source, deps

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        """The one kept token in each dependency set; EOS where the set is empty."""
        deps = batch.dependencies
        values = torch.gather(batch.tokens[:, None, :].expand(-1, deps.shape[1], -1), 2, deps.clamp(min=0))
        kept = (deps >= 0) & (values < self.keep)
        out = torch.where(kept, values, 0).sum(-1)
        return torch.where(kept.any(-1), out, torch.full_like(out, self.eos))
