"""Position schemes, one small module each, chosen by name."""

from lengen.positions import (  # noqa: F401  (each import registers a scheme)
    alibi,
    fire,
    learned,
    nope,
    randomized,
    rope,
    sinusoidal,
    t5_bias,
)
from lengen.positions.base import SCHEMES, Dims, PositionScheme, make_scheme, register_scheme

__all__ = ["SCHEMES", "Dims", "PositionScheme", "make_scheme", "register_scheme"]
