"""copy: repeat the input. Output j copies input j; its coupled id is computable from the layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lengen.tasks.base import register_task
from lengen.tasks.seq2seq import Seq2SeqTask


@register_task("copy")
@dataclass
class Copy(Seq2SeqTask):
    """x_1..x_n | x_1..x_n $"""

    ids_from_layout: ClassVar[bool] = True

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        b, n = x.shape
        source = np.arange(n)[None].repeat(b, 0)
        return source, [[[j] for j in range(n)]] * b
