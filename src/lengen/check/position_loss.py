"""Loss by position range with bootstrap intervals over windows (steps 2 and 3 of `lengen check`).

``losses [W, C-1]`` holds the loss of token p at column p-1 (``lengen.text.length_eval.token_losses``):
token p was predicted from p tokens of context. A range [a, b) averages columns a-1 .. b-2 per window;
intervals resample windows (the independent unit), 95% percentile bootstrap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BOOTSTRAP = 1000


def bootstrap_ci(values: np.ndarray, reps: int = BOOTSTRAP, seed: int = 0,
                 stat: Any = np.mean) -> tuple[float, float]:
    """95% percentile interval of ``stat`` over resampled rows of ``values`` (1-D, or 2-D [rows, ...]
    with ``stat`` taking the resampled array)."""
    values = np.asarray(values)
    if len(values) < 2:
        v = float(stat(values)) if len(values) else float("nan")
        return v, v
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(reps, len(values)))
    draws = np.array([stat(values[i]) for i in idx])
    lo, hi = np.nanquantile(draws, [0.025, 0.975])
    return float(lo), float(hi)


def range_means(losses: np.ndarray, a: int, b: int) -> np.ndarray:
    """Per-window mean loss over positions [a, b), [W]."""
    return np.asarray(losses[:, a - 1: b - 1].mean(axis=1))


def edges_for(n: int, end: int) -> list[int]:
    """[N/2, N), [N, 2N), [2N, 4N), ..., the last range ending at ``end`` (exclusive) and at least as long
    as the one before it; the first range is the in-distribution one."""
    edges = [max(1, n // 2), n]
    while edges[-1] * 2 < end - 1:
        edges.append(edges[-1] * 2)
    return edges + [end]


def ranges_table(losses: np.ndarray, edges: list[int], seed: int = 0,
                 near: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Mean loss per range with its interval, and its *rise*: the loss minus the loss of the same tokens
    read with only their last N tokens (``near``, same shape; ``lengen.text.length_eval.
    near_context_losses``), so the rise is what reading the longer input costs, free of how hard the
    tokens of each range happen to be. Without ``near``, the rise is over the first range instead."""
    first = range_means(losses, edges[0], edges[1])
    rows = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        m = range_means(losses, a, b)
        rise = m - (range_means(near, a, b) if near is not None else first)
        rows.append({"start": a, "end": b, "loss": float(m.mean()), "loss_ci": bootstrap_ci(m, seed=seed),
                     "rise": float(rise.mean()), "rise_ci": bootstrap_ci(rise, seed=seed)})
    return rows


def curve(losses: np.ndarray, points: int = 64) -> tuple[list[int], list[float]]:
    """Mean loss in ``points`` equal position bins (for the plots)."""
    c = losses.shape[1]
    edges = np.unique(np.linspace(1, c + 1, points + 1).astype(int))
    xs, ys = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        xs.append(int((a + b) // 2))
        ys.append(float(losses[:, a - 1: b - 1].mean()))
    return xs, ys
