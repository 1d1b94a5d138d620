"""binary_addition (Delétang et al. 2023, context-sensitive): ``addition`` in base 2.

Same layout, coupled ids and dependency sets as ``addition`` (see its module doc); the digits are 0/1
and the operator tokens keep addition's ids. With the answer least significant bit first (default)
each answer bit depends on 5 tokens at coupled-id distance <= 1: sparse and local in id space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lengen.tasks.addition import Addition
from lengen.tasks.base import register_task


@register_task("binary_addition")
@dataclass
class BinaryAddition(Addition):
    """a + b = c in binary, bits of equal significance coupled."""

    base: ClassVar[int] = 2

    def token_names(self) -> list[str]:
        return ["0", "1", *["-"] * 8, "+", "=", "$"]
