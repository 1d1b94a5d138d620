"""Delétang et al.'s names for tasks lengen already has, with their defaults (reuse, not copies).

- ``reverse_string``: ``reverse`` over a binary alphabet.
- ``bucket_sort``: ``sort`` over an alphabet of 5 symbols (a stable sort of a small alphabet).
"""

from __future__ import annotations

from dataclasses import dataclass

from lengen.registry import param
from lengen.tasks.base import register_task
from lengen.tasks.reverse import Reverse
from lengen.tasks.sort import Sort


@register_task("reverse_string")
@dataclass
class ReverseString(Reverse):
    """x_1..x_n | x_n..x_1 $ over a binary alphabet (Delétang et al.'s reverse string)"""

    symbols: int = param(2, "number of distinct input symbols")


@register_task("bucket_sort")
@dataclass
class BucketSort(Sort):
    """x_1..x_n | sorted(x) $ over 5 symbols (Delétang et al.'s bucket sort)"""

    symbols: int = param(5, "number of distinct input symbols")
