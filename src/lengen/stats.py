"""Small statistics shared by the reports and ``lengen check`` (numpy only, no lengen imports)."""

from __future__ import annotations

from typing import Any

import numpy as np


def ranks(values: Any) -> np.ndarray:
    """0-based ranks, ties given their average rank (NaNs rank last, tied with each other)."""
    v = np.asarray(values, float)
    order = np.argsort(v, kind="stable")
    ordinal = np.empty(len(v))
    ordinal[order] = np.arange(len(v))
    _, inverse = np.unique(v, return_inverse=True)
    average: np.ndarray = np.bincount(inverse, ordinal) / np.bincount(inverse)
    return average[inverse]


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation (average ranks for ties): the Pearson correlation of the ranks.
    nan where it is undefined: fewer than 2 points, or either side constant (no variation is not 0)."""
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} x values but {len(y)} y values")
    if len(x) < 2:
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    if rx.min() == rx.max() or ry.min() == ry.max():
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
