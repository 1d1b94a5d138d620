"""squeeze_reverse: one token per run of equal tokens, last run first (``tr -s`` read backwards).

Each output is the last token of its run. The first is x_n, next to the separator (id n + 1 with the
default ``boundary_id: end``); given the previous output's source p, the next is the nearest token
behind p that differs from x_p, the last token of the run before. Its dependency set is that token and
the run from it to p: sparse, compared by content, and as long as the run (longer runs at longer n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks.base import Batch, register_task
from lengen.tasks.squeeze import Squeeze


@register_task("squeeze_reverse")
@dataclass
class SqueezeReverse(Squeeze):
    """x_1..x_n | the last token of every run of equal tokens, last run first $"""

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        last = np.ones_like(x, dtype=bool)
        last[:, :-1] = x[:, :-1] != x[:, 1:]
        m = int(last[0].sum())
        source = np.nonzero(last)[1].reshape(x.shape[0], m)[:, ::-1].copy()
        deps = []
        for row in source.tolist():
            deps.append([[row[0]]] + [list(range(q, p + 1)) for p, q in zip(row[:-1], row[1:], strict=True)])
        return source, deps

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        """The first token of each dependency set (the one that differs from the run after it); EOS last."""
        deps = batch.dependencies
        first = torch.where(deps >= 0, deps, deps.shape[-1] + batch.tokens.shape[1]).min(-1).values
        valid = (deps >= 0).any(-1)
        values = torch.gather(batch.tokens, 1, torch.where(valid, first, 0))
        return torch.where(valid, values, torch.full_like(values, self.eos))
