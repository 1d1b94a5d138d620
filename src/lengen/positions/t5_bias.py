"""t5_bias: learned per-head biases over log-spaced buckets of relative distance (Raffel et al. 2020)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lengen.positions.base import Dims, PositionScheme, register_scheme, relative_distance
from lengen.registry import param


@register_scheme("t5_bias")
class T5Bias(PositionScheme):
    """T5 relative attention bias (causal buckets: exact for short distances, log-spaced beyond)."""

    shift_invariant = True

    @dataclass
    class Params:
        num_buckets: int = param(32, "number of distance buckets")
        max_distance: int = param(128, "distances beyond this share the last bucket")

    def __init__(self, dims: Dims, params: Params | None = None) -> None:
        super().__init__(dims, params)
        self.params: T5Bias.Params = self.params
        self.table = nn.Embedding(self.params.num_buckets, dims.n_heads)
        nn.init.zeros_(self.table.weight)

    def buckets(self, distance: torch.Tensor) -> torch.Tensor:
        n = distance.clamp(min=0)
        exact = self.params.num_buckets // 2
        log_ratio = torch.log(n.clamp(min=exact) / exact) / math.log(self.params.max_distance / exact)
        large = (exact + log_ratio * (self.params.num_buckets - exact)).long()
        large = large.clamp(max=self.params.num_buckets - 1)
        return torch.where(n < exact, n.long(), large)

    def bias(self, q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor:
        b = self.buckets(relative_distance(q_ids, k_ids)[:, 0])  # [B, Tq, Tk]
        return self.table(b).permute(0, 3, 1, 2)
