"""sparse_parity: XOR of k planted bits among background noise (the paper's k-sparse planted task)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lengen.registry import param
from lengen.tasks.base import register_task
from lengen.tasks.planted import _PlantedBase, sum_mod


@register_task("sparse_parity")
@dataclass
class SparseParity(_PlantedBase):
    """XOR of k planted bits hidden among background noise tokens (bits recognisable by content)."""

    k: int = param(2, "number of planted bits the answer depends on (the largest, when k_min is set)")
    k_min: int | None = param(None, "if set, each sample draws its k uniformly from k_min..k (a curriculum)")
    noise_vocab: int = param(8, "number of distinct background tokens")
    window: int | None = param(None, "planted bits fall in a random window of this width (None: anywhere)")
    k_tokens: int | None = param(None, "query tokens ?1..?k_tokens name the sample's k (None: k of them; 0: one "
                                 "query token that never names k, as in version 0)")

    def __post_init__(self) -> None:
        self._validate()

    def answer_of(self, symbols: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return sum_mod(symbols, valid, 2)
