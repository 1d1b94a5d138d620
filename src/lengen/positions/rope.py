"""rope: rotary position embedding (Su et al. 2021); attention depends on q - k only."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lengen.kernels import rotate as rotate_halves_with_grad
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

    def rotation(self, ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.dims.head_dim % 2:  # odd head_dim: rotate() leaves the last channel out, the tables cannot
            return None
        return self._tables(ids, dtype)

    def _tables(self, ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        # ids are exact in float32 up to 2**24, far beyond any length we evaluate
        angle = ids.float()[:, None, :, None] * self.inv_freq2  # [B, 1, T, 2 half]
        return angle.cos().to(dtype), (angle.sin() * self.sin_sign).to(dtype)

    def rotate(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        # [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin], by a hand-written autograd function that reads
        # strided views (the fused q/k/v product) as they are and returns a contiguous result
        cos2, sin2 = self._tables(ids, x.dtype)
        half = self.inv_freq.shape[0]
        if x.shape[-1] == 2 * half:
            return rotate_halves_with_grad(x, cos2, sin2)
        # odd head_dim: the last channel is left unrotated
        return torch.cat([rotate_halves_with_grad(x[..., : 2 * half], cos2, sin2), x[..., 2 * half :]], dim=-1)
