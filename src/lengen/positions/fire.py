"""fire: Functional Interpolation for Relative Positions (Li et al. 2024).

bias_h(i, j) = f_h(psi(i - j) / psi(max(L, i))), psi(x) = log(c x + 1), with f a small MLP.
Dividing by the query's own position maps every length onto [0, 1] ("progressive interpolation"),
so FIRE is *not* invariant to shifting all ids: that is by design, not a bug.

The threshold is learned as Li et al. parametrise it: L = |m * L0| with L0 fixed (``threshold``,
512 in their code) and the multiplier m learned from 1. Queries below L are normalised by L, so
d loss / d m is non-zero from the first step (a raw learned L started at 0 would have max(L, i) = i
everywhere, a zero gradient, and never move).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lengen.positions.base import Dims, PositionScheme, register_scheme, relative_distance
from lengen.registry import param


@register_scheme("fire")
class FIRE(PositionScheme):
    """Learned MLP of the log-distance normalised by max(learned threshold, query position)."""

    @dataclass
    class Params:
        hidden: int = param(32, "width of the MLP")
        threshold: float = param(512.0, "initial L of the normaliser max(L, query position); L = |m * threshold| "
                                 "with m learned from 1, as in Li et al. (0: normalise by the query position "
                                 "alone, nothing learned)")

    def __init__(self, dims: Dims, params: Params | None = None) -> None:
        super().__init__(dims, params)
        self.params: FIRE.Params = self.params
        self.mlp = nn.Sequential(nn.Linear(1, self.params.hidden), nn.ReLU(), nn.Linear(self.params.hidden, dims.n_heads))
        self.log_c = nn.Parameter(torch.zeros(()))  # c = exp(log_c) > 0, starts at 1
        self.threshold_multiplier = nn.Parameter(torch.ones(()))

    def threshold(self) -> torch.Tensor:
        """The learned L = |m * L0|."""
        return (self.threshold_multiplier * self.params.threshold).abs()

    def bias(self, q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor:
        c = self.log_c.exp()
        dist = relative_distance(q_ids, k_ids)[:, 0].clamp(min=0)  # [B, Tq, Tk]
        norm = torch.maximum(q_ids.float(), self.threshold()).clamp(min=1.0)[:, :, None]
        x = torch.log1p(c * dist) / torch.log1p(c * norm)
        return self.mlp(x[..., None]).permute(0, 3, 1, 2)
