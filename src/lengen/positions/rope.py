"""rope: rotary position embedding (Su et al. 2021); attention depends on q - k only."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lengen.positions.base import Dims, PositionScheme, register_scheme
from lengen.registry import param


@register_scheme("rope")
class RoPE(PositionScheme):
    """Rotary embeddings on queries and keys (half-split pairs, as in GPT-NeoX / Llama)."""

    shift_invariant = True

    @dataclass
    class Params:
        theta: float = param(10000.0, "base of the rotation frequencies")

    def __init__(self, dims: Dims, params: Params | None = None) -> None:
        super().__init__(dims, params)
        self.params: RoPE.Params = self.params
        half = dims.head_dim // 2
        inv_freq = 1.0 / (self.params.theta ** (torch.arange(half, dtype=torch.float32) / half))
        self.inv_freq: torch.Tensor
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # both halves' frequencies, and the sign of sin in each half: [cos, cos] and [-sin, sin] come
        # out of one cos and one sin over the whole head, with no concatenation per call
        self.inv_freq2: torch.Tensor
        self.sin_sign: torch.Tensor
        self.register_buffer("inv_freq2", torch.cat([inv_freq, inv_freq]), persistent=False)
        self.register_buffer("sin_sign", torch.cat([-torch.ones(half), torch.ones(half)]), persistent=False)

    def rotate(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        # ids are exact in float32 up to 2**24, far beyond any length we evaluate
        angle = ids.float()[:, None, :, None] * self.inv_freq2  # [B, 1, T, 2 half]
        cos2, sin2 = angle.cos().to(x.dtype), (angle.sin() * self.sin_sign).to(x.dtype)
        half = self.inv_freq.shape[0]
        # [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin], written as x * [cos, cos] + [x2, x1] * [-sin, sin]
        # (bitwise the same: a - b == a + (-b)) so that each op runs once over whole heads. Strided
        # views of the fused QKV projection slow every elementwise op, so copy to contiguous first.
        x = x.contiguous()
        pairs = x[..., : 2 * half]
        swapped = torch.cat([pairs[..., half:], pairs[..., :half]], dim=-1)
        rotated = pairs * cos2 + swapped * sin2
        if x.shape[-1] > 2 * half:  # odd head_dim: the last channel is left unrotated
            rotated = torch.cat([rotated, x[..., 2 * half :]], dim=-1)
        return rotated
