"""The position-scheme interface. The model calls every hook of its scheme, in the same places,
whatever the scheme is: a scheme adds to the input (``embed``), rotates queries and keys
(``rotate``), biases attention scores (``bias``), and may rewrite the position ids it is given
(``prepare_ids``: random offsets, randomized positions, PoSE). All hooks consume position ids, so
custom or coupled ids flow through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lengen.errors import ConfigError
from lengen.registry import Registry


@dataclass(frozen=True)
class Dims:
    d_model: int
    n_heads: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class PositionScheme(nn.Module):
    """Base class: every hook is a no-op (which is exactly NoPE)."""

    name: ClassVar[str] = ""
    # True when outputs are unchanged if every position id is shifted by the same constant
    shift_invariant: ClassVar[bool] = False

    @dataclass
    class Params:
        pass

    def __init__(self, dims: Dims, params: Any = None) -> None:
        super().__init__()
        self.dims = dims
        self.params = params if params is not None else self.Params()

    def prepare_ids(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rewrite position ids before the forward pass (training-time augmentations live here).

        Called with the module's ``training`` flag set as it will be for the forward pass.
        """
        return ids

    def embed(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Additive input embedding [B, T, d_model], or None."""
        return None

    def rotate(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Rotate queries and/or keys [..., B, H, T, head_dim] by their positions [B, T].

        The model passes queries and keys stacked as [2, B, H, T, head_dim]: broadcast over leading dims.
        """
        return x

    def rotation(self, ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
        """RoPE-style tables ``(cos2, sin2)`` [B, 1, T, head_dim] when ``rotate`` is exactly
        ``lengen.kernels.rotate_halves(x, cos2, sin2)``, else None. Given them, the attention fuses the
        rotation with the split of the fused q/k/v product into heads (a faster backward)."""
        return None

    def bias(self, q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor | None:
        """Additive attention-score bias [B, H, Tq, Tk] from query and key ids, or None."""
        return None

    def max_position(self) -> int | None:
        """Largest position id the scheme can represent plus one (None: unbounded)."""
        return None

    def id_table(self) -> nn.Embedding | None:
        """The learned table of one d_model vector per position id, if the scheme has one (a tied PPC
        position head scores ids against it). Bias tables over distances (t5_bias) are not id tables."""
        return None

    def check_ids(self, ids: torch.Tensor) -> None:
        """Raise a clear error for ids beyond the scheme's table (an index error otherwise)."""
        limit = self.max_position()
        if limit is None or torch.compiler.is_compiling():
            # reading ids.max() on the host would break a compiled graph; the trainer checks each
            # batch's ids before its compiled step instead (train.py)
            return
        if int(ids.max()) >= limit:
            raise ConfigError(
                f"scheme {self.name}: position id {int(ids.max())} exceeds its table of {limit} "
                f"positions; raise max_position"
            )


SCHEMES: Registry[PositionScheme] = Registry("position scheme")
register_scheme = SCHEMES.register


def make_scheme(name: str, dims: Dims, **params: Any) -> PositionScheme:
    """Build a registered scheme from its name and parameters (validated)."""
    return SCHEMES.create(name, dims, **params)


def relative_distance(q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor:
    """q - k for every query/key pair, [B, 1, Tq, Tk] (positive: the key is earlier)."""
    return (q_ids[:, None, :, None] - k_ids[:, None, None, :]).float()


def random_offsets(ids: torch.Tensor, limit: int, generator: torch.Generator | None) -> torch.Tensor:
    """Shift each sample's ids by a random offset that keeps them below ``limit``."""
    room = limit - ids.amax(dim=1, keepdim=True)  # offsets 0 .. room-1 keep ids < limit
    u = torch.rand(ids.shape[0], 1, generator=generator, device=ids.device)
    return ids + (u * room.clamp(min=1)).long()
