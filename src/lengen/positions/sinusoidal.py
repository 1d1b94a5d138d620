"""sinusoidal: the fixed sine/cosine absolute encoding of Vaswani et al. (2017)."""

from __future__ import annotations

import math

import torch

from lengen.positions.base import Dims, PositionScheme, register_scheme


def sinusoid(ids: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """[..., dim] sine/cosine features of (possibly fractional) positions ``ids``."""
    half = dim // 2
    freq = torch.exp(-math.log(base) * torch.arange(half, device=ids.device, dtype=torch.float32) / half)
    angle = ids.float()[..., None] * freq
    out = torch.cat([angle.sin(), angle.cos()], dim=-1)
    return torch.nn.functional.pad(out, (0, dim - 2 * half))


@register_scheme("sinusoidal")
class Sinusoidal(PositionScheme):
    """Fixed sinusoidal absolute embeddings added to the input."""

    def __init__(self, dims: Dims, params: object = None) -> None:
        super().__init__(dims, params)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return sinusoid(ids, self.dims.d_model)
