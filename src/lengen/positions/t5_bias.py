"""t5_bias: learned per-head biases over log-spaced buckets of relative distance (Raffel et al. 2020)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lengen.errors import ConfigError
from lengen.positions.base import Dims, PositionScheme, register_scheme, relative_distance
from lengen.registry import param


@register_scheme("t5_bias")
class T5Bias(PositionScheme):
    """T5 relative attention bias (buckets: exact for short distances, log-spaced beyond).

    Causal buckets (the default) give every key at or after the query's id the bucket of distance 0,
    which is all a causal model over plain ids ever sees. Coupled ids can put a key *ahead* of the
    query in id space (in addition the next answer digit reads operand digits one id above its own), so
    ``bidirectional`` splits the buckets in two halves, one per sign, as the T5 encoder does.
    """

    shift_invariant = True

    @dataclass
    class Params:
        num_buckets: int = param(32, "number of distance buckets")
        max_distance: int = param(128, "distances beyond this share the last bucket")
        bidirectional: bool = param(False, "separate buckets for keys whose id is above the query's "
                                    "(half the buckets each way)")
        scale: float = param(1.0, "multiplies the learned biases; the table is zero-initialised, so with "
                             "Adam the biases then move `scale` times faster")
        window: int = param(0, "if > 0, a key whose id is more than `window` from the query's is masked out: "
                            "attention local in id space, so the number of keys a query weighs does not "
                            "grow with the length (0: no window)")

    def __init__(self, dims: Dims, params: Params | None = None) -> None:
        super().__init__(dims, params)
        self.params: T5Bias.Params = self.params
        p = self.params
        if p.num_buckets < (4 if p.bidirectional else 2) or p.max_distance < 1 or p.scale <= 0 or p.window < 0:
            raise ConfigError(f"t5_bias: needs num_buckets >= {4 if p.bidirectional else 2}, max_distance >= 1, "
                              f"scale > 0 and window >= 0, got {p.num_buckets}, {p.max_distance}, {p.scale}, "
                              f"{p.window}")
        self.table = nn.Embedding(self.params.num_buckets, dims.n_heads)
        nn.init.zeros_(self.table.weight)

    def buckets(self, distance: torch.Tensor) -> torch.Tensor:
        if not self.params.bidirectional:
            return self._one_sided(distance.clamp(min=0), self.params.num_buckets)
        half = self.params.num_buckets // 2
        return torch.where(distance < 0, half + self._one_sided(-distance, half), self._one_sided(distance, half))

    def _one_sided(self, n: torch.Tensor, num_buckets: int) -> torch.Tensor:
        """Buckets 0 .. num_buckets - 1 of non-negative distances ``n``."""
        exact = max(1, num_buckets // 2)
        log_ratio = torch.log(n.clamp(min=exact) / exact) / math.log(max(self.params.max_distance, exact + 1) / exact)
        large = (exact + log_ratio * (num_buckets - exact)).long()
        large = large.clamp(max=num_buckets - 1)
        return torch.where(n < exact, n.long(), large)

    def bias(self, q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor:
        distance = relative_distance(q_ids, k_ids)[:, 0]  # [B, Tq, Tk]
        bias = (self.params.scale * self.table(self.buckets(distance))).permute(0, 3, 1, 2)
        if self.params.window > 0:
            far = (distance.abs() > self.params.window)[:, None]
            bias = bias.masked_fill(far, float("-inf"))
        return bias
