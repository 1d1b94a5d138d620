"""reverse: the input backwards. Output j copies input n + 1 - j, an id computable from the layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lengen.tasks.base import register_task
from lengen.tasks.seq2seq import Seq2SeqTask


@register_task("reverse")
@dataclass
class Reverse(Seq2SeqTask):
    """x_1..x_n | x_n..x_1 $"""

    ids_from_layout: ClassVar[bool] = True

    def align(self, x: np.ndarray) -> tuple[np.ndarray, list[list[list[int]]]]:
        b, n = x.shape
        source = np.arange(n - 1, -1, -1)[None].repeat(b, 0)
        return source, [[[n - 1 - j] for j in range(n)]] * b
