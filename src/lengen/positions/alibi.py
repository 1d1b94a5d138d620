"""alibi: a fixed linear distance penalty per head (Press et al. 2022)."""

from __future__ import annotations

import math

import torch

from lengen.positions.base import Dims, PositionScheme, register_scheme, relative_distance


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """The geometric slopes of the ALiBi paper, extended to head counts that are not powers of 2."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_two(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(power_of_two(closest) + extra)


@register_scheme("alibi")
class ALiBi(PositionScheme):
    """Attention bias -slope_h * |q - k|, no learned parameters."""

    shift_invariant = True

    def __init__(self, dims: Dims, params: object = None) -> None:
        super().__init__(dims, params)
        self.slopes: torch.Tensor
        self.register_buffer("slopes", alibi_slopes(dims.n_heads)[None, :, None, None], persistent=False)

    def bias(self, q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor:
        return -self.slopes * relative_distance(q_ids, k_ids).abs()
