"""Output heads: the next-token head and the heads registered beside it (``lengen.heads.base``).

Importing this package registers the built-in heads (PPC's position heads, ``lengen.heads.ppc``).
"""

from lengen.heads import ppc as _ppc  # noqa: F401  (registers the PPC heads)
from lengen.heads.base import HEADS, VALIDATORS, OutputHead, Prompt, register_head, register_validator
from lengen.heads.pointer import CountPointer, count_features
from lengen.heads.token import TokenHead

__all__ = ["HEADS", "VALIDATORS", "CountPointer", "OutputHead", "Prompt", "TokenHead", "count_features",
           "register_head", "register_validator"]
