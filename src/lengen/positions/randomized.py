"""randomized: randomized positional encodings (Ruoss et al. 2023).

Each sample's ids are mapped, order-preserving, onto a sorted random subset of ``0 .. max_position-1``
before a base scheme encodes them, so a model trained on short inputs has seen the large ids that
long inputs need. As in the paper, the ids are randomized at evaluation too; evaluation passes a seeded
generator, so it stays deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lengen.errors import ConfigError
from lengen.positions.base import SCHEMES, Dims, PositionScheme, register_scheme
from lengen.registry import param


@register_scheme("randomized")
class Randomized(PositionScheme):
    """Order-preserving random ids from a large range, encoded by a base scheme."""

    @dataclass
    class Params:
        base: str = param("sinusoidal", "scheme that encodes the randomized ids (sinusoidal, learned, rope, ...)")
        max_position: int = param(2048, "ids are drawn from 0 .. max_position-1")

    def __init__(self, dims: Dims, params: Params | None = None) -> None:
        super().__init__(dims, params)
        self.params: Randomized.Params = self.params
        if self.params.base == "randomized":
            raise ConfigError("scheme randomized: base cannot be randomized itself")
        base_args = {"max_position": self.params.max_position} if self.params.base == "learned" else {}
        self.base = SCHEMES.create(self.params.base, dims, **base_args)

    def max_position(self) -> int:
        return int(self.params.max_position)

    def prepare_ids(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = int(ids.max()) + 1
        if n > self.params.max_position:
            raise ConfigError(f"scheme randomized: sequence needs {n} ids but max_position is "
                              f"{self.params.max_position}")
        keys = torch.rand(ids.shape[0], self.params.max_position, generator=generator, device=ids.device)
        chosen = keys.topk(n, dim=1).indices.sort(dim=1).values
        return torch.gather(chosen, 1, ids)

    def embed(self, ids: torch.Tensor) -> torch.Tensor | None:
        return self.base.embed(ids)

    def rotate(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.base.rotate(x, ids)

    def rotation(self, ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.base.rotation(ids, dtype)

    def bias(self, q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor | None:
        return self.base.bias(q_ids, k_ids)
