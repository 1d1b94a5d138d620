"""Modular arithmetic expressions shared by modular_arithmetic(_brackets) and solve_equation.

Token ids: digits ``0 .. p-1``, then ``+ - * ( ) x = ?`` at ``p .. p+7``. Expressions follow the usual
precedence (``*`` before ``+``/``-``, unary minus binds tightest) and are evaluated modulo p.
Generation draws a random expression with exactly ``n`` tokens (our choice: a node is a bracketed
subexpression with probability 1/4, otherwise a binary operation with a uniformly drawn split; two
tokens are a negated digit), so every length >= 1 can be sampled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Task

PLUS, MINUS, TIMES, OPEN, CLOSE, X, EQUALS, QUERY = range(8)  # offsets from the modulus p
NAMES = ["+", "-", "*", "(", ")", "x", "=", "?"]


@dataclass
class ModularVocabTask(Task):
    """The vocabulary every task over these expressions shares: digits 0..p-1, then the operators."""

    modulus: int = param(5, "the modulus p (digits 0..p-1)")

    def __post_init__(self) -> None:
        if self.modulus < 2:
            raise ConfigError(f"task {self.name}: modulus must be >= 2, got {self.modulus}")

    @property
    def vocab_size(self) -> int:
        return self.modulus + len(NAMES)

    def token_names(self) -> list[str]:
        return token_names(self.modulus)

    def chance_accuracy(self) -> float:
        return 1 / self.modulus


def python_rng(rng: np.random.Generator) -> random.Random:
    """A Python generator seeded from ``rng``: the per-node draws of a recursive generator are ~10x
    cheaper from it than from numpy, and the batch stays a function of ``rng``'s seed."""
    return random.Random(int(rng.integers(0, 2**63)))


def random_expression(rng: random.Random, n: int, p: int, ops: tuple[int, ...]) -> list[int]:
    """A random expression of exactly ``n`` tokens over digits ``0..p-1`` and operator offsets ``ops``."""
    out: list[int] = []
    _expression(rng, n, p, ops, out)
    return out


def _expression(rng: random.Random, n: int, p: int, ops: tuple[int, ...], out: list[int]) -> None:
    if n == 1:
        out.append(rng.randrange(p))
    elif n == 2:
        out += (p + MINUS, rng.randrange(p))
    elif rng.random() < 0.25:
        out.append(p + OPEN)
        _expression(rng, n - 2, p, ops, out)
        out.append(p + CLOSE)
    else:
        left = rng.randrange(1, n - 1)
        _expression(rng, left, p, ops, out)
        out.append(p + ops[rng.randrange(len(ops))])
        _expression(rng, n - 1 - left, p, ops, out)


def place_variable(rng: random.Random, expression: list[int], p: int) -> list[int]:
    """Replace one digit (drawn uniformly) by the unknown ``x``."""
    digits = [i for i, t in enumerate(expression) if t < p]
    out = list(expression)
    out[digits[rng.randrange(len(digits))]] = p + X
    return out


def evaluate(tokens: list[int], p: int, x: int = 0) -> int:
    """Value of an expression modulo p (recursive descent), with ``x`` standing for the unknown."""
    value, end = _sum(tokens, 0, p, x)
    if end != len(tokens):
        raise ValueError(f"trailing tokens after position {end}")
    return value % p


def _sum(t: list[int], i: int, p: int, x: int) -> tuple[int, int]:
    value, i = _product(t, i, p, x)
    while i < len(t) and t[i] in (p + PLUS, p + MINUS):
        sign = 1 if t[i] == p + PLUS else -1
        rhs, i = _product(t, i + 1, p, x)
        value = (value + sign * rhs) % p
    return value, i


def _product(t: list[int], i: int, p: int, x: int) -> tuple[int, int]:
    value, i = _factor(t, i, p, x)
    while i < len(t) and t[i] == p + TIMES:
        rhs, i = _factor(t, i + 1, p, x)
        value = value * rhs % p
    return value, i


def _factor(t: list[int], i: int, p: int, x: int) -> tuple[int, int]:
    tok = t[i]
    if tok == p + MINUS:
        value, i = _factor(t, i + 1, p, x)
        return -value % p, i
    if tok == p + OPEN:
        value, i = _sum(t, i + 1, p, x)
        if t[i] != p + CLOSE:
            raise ValueError(f"expected ')' at position {i}")
        return value, i + 1
    if tok == p + X:
        return x % p, i + 1
    if tok < p:
        return tok, i + 1
    raise ValueError(f"unexpected token {tok} at position {i}")


def token_names(p: int) -> list[str]:
    return [str(d) for d in range(p)] + NAMES
