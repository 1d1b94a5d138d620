"""Output heads beyond the token head (PPC position heads)."""

from lengen.heads.pointer import CountPointer, count_features

__all__ = ["CountPointer", "count_features"]
