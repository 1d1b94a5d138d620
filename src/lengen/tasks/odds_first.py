"""odds_first (Delétang et al. 2023, context-sensitive): the tokens at odd positions, then those at even.

With positions counted from 1, output ``x_1 x_3 x_5 ... x_2 x_4 ...``. Each output copies one input
token (k = 1) chosen by position only, so its coupled id follows from the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lengen.registry import param
from lengen.tasks.base import register_task
from lengen.tasks.seq2seq import Seq2SeqTask


@register_task("odds_first")
@dataclass
class OddsFirst(Seq2SeqTask):
    """x_1..x_n | x_1 x_3 ... x_2 x_4 ... $"""

    symbols: int = param(2, "number of distinct input symbols")
    ids_from_layout: ClassVar[bool] = True

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        b, n = x.shape
        order = np.concatenate([np.arange(0, n, 2), np.arange(1, n, 2)])
        return order[None].repeat(b, 0), [[[int(j)] for j in order]] * b
