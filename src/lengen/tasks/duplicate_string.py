"""duplicate_string (Delétang et al. 2023, context-sensitive): write the input twice.

Output j copies input j mod n: one token (k = 1) at a distance that grows with n, but at coupled-id
distance 0 (its id is the source's, known from the layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lengen.registry import param
from lengen.tasks.base import register_task
from lengen.tasks.seq2seq import Seq2SeqTask


@register_task("duplicate_string")
@dataclass
class DuplicateString(Seq2SeqTask):
    """x_1..x_n | x_1..x_n x_1..x_n $"""

    symbols: int = param(2, "number of distinct input symbols")
    ids_from_layout: ClassVar[bool] = True

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return length + 2 if ids == "coupled" else 3 * length + 2

    def output_count(self, length: int) -> int:
        return 2 * length

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        b, n = x.shape
        source = np.tile(np.arange(n), 2)[None].repeat(b, 0)
        return source, [[[j % n] for j in range(2 * n)]] * b
