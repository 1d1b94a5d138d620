"""Modular arithmetic expressions shared by modular_arithmetic(_brackets) and solve_equation.

Token ids: digits ``0 .. p-1``, then ``+ - * ( ) x = ?`` at ``p .. p+7``. Expressions follow the usual
precedence (``*`` before ``+``/``-``, unary minus binds tightest) and are evaluated modulo p.
Generation draws a random expression with exactly ``n`` tokens (our choice: a node is a bracketed
subexpression with probability 1/4, otherwise a binary operation with a uniformly drawn split; two
tokens are a negated digit), so every length >= 1 can be sampled.
"""

from __future__ import annotations

import numpy as np

PLUS, MINUS, TIMES, OPEN, CLOSE, X, EQUALS, QUERY = range(8)  # offsets from the modulus p
NAMES = ["+", "-", "*", "(", ")", "x", "=", "?"]


def random_expression(rng: np.random.Generator, n: int, p: int, ops: tuple[int, ...]) -> list[int]:
    """A random expression of exactly ``n`` tokens over digits ``0..p-1`` and operator offsets ``ops``."""
    if n == 1:
        return [int(rng.integers(0, p))]
    if n == 2:
        return [p + MINUS, int(rng.integers(0, p))]
    if rng.random() < 0.25:
        return [p + OPEN, *random_expression(rng, n - 2, p, ops), p + CLOSE]
    left = int(rng.integers(1, n - 1))
    op = p + int(ops[int(rng.integers(0, len(ops)))])
    return [*random_expression(rng, left, p, ops), op, *random_expression(rng, n - 1 - left, p, ops)]


def place_variable(rng: np.random.Generator, expression: list[int], p: int) -> list[int]:
    """Replace one digit (drawn uniformly) by the unknown ``x``."""
    digits = [i for i, t in enumerate(expression) if t < p]
    out = list(expression)
    out[digits[int(rng.integers(0, len(digits)))]] = p + X
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
