"""sort: the input in ascending order, ties broken by position (a stable sort).

Output j comes from the input position of the j-th smallest token, so its coupled id needs the answer
(an oracle for plain coupling; PPC predicts it). Its dependency set is the whole input: even when the
previous output's source is known, the next one is the smallest token not yet emitted, which any input
token can change. Sorting is therefore dense, the boundary case of the sparsity theory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks.base import Batch, register_task
from lengen.tasks.seq2seq import Seq2SeqTask


@register_task("sort")
@dataclass
class Sort(Seq2SeqTask):
    """x_1..x_n | sorted(x) $"""

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        b, n = x.shape
        source = np.argsort(x, axis=1, kind="stable")
        return source, [[list(range(n))] * n] * b

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        deps = batch.dependencies  # [B, A, D]
        valid = deps >= 0
        values = torch.gather(batch.tokens[:, None, :].expand(-1, deps.shape[1], -1), 2, deps.clamp(min=0))
        ranked = torch.sort(torch.where(valid, values, self.symbols + 10), dim=-1).values
        rank = torch.arange(deps.shape[1]).clamp(max=deps.shape[2] - 1)
        out = torch.gather(ranked, 2, rank[None, :, None].expand(deps.shape[0], -1, 1))[..., 0]
        return torch.where(valid.any(-1), out, torch.full_like(out, self.eos))
