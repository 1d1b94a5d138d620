"""Multi-seed summaries: mean and a 95% Student-t interval over seeds, per series and length.

The interval is mean +- t(0.975, n-1) * s / sqrt(n) with s the sample standard deviation over the
n seeds (no interval for a single seed). Accuracy lives in [0, 1], so the bounds are clipped to it;
with few seeds the interval is wide, which is the honest answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lengen.report.results import label_columns, mean_over_seeds

# two-sided 95% quantiles t(0.975, df) of Student's t distribution (df = seeds - 1)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
         19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052,
         28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
INTERVAL = "95% Student-t interval over seeds (mean +- t(0.975, n-1) s/sqrt(n), clipped to [0, 1])"


def t975(df: int) -> float:
    """t(0.975, df); between tabulated values the next smaller df is used (a slightly wider interval)."""
    if df < 1:
        raise ValueError("a t interval needs at least two values")
    return _T975[max(d for d in _T975 if d <= df)] if df <= 120 else 1.960


@dataclass(frozen=True)
class Summary:
    mean: float
    low: float  # equal to mean when n == 1
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def summarize(values: Sequence[float], lower: float = 0.0, upper: float = 1.0) -> Summary:
    n = len(values)
    if n == 0:
        raise ValueError("nothing to summarize")
    mean = sum(values) / n
    if n == 1:
        return Summary(mean, mean, mean, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return Summary(mean, max(lower, mean - half), min(upper, mean + half), n)


def summary_by_series(rows: Sequence[dict[str, Any]], value: str = "accuracy"
                      ) -> tuple[list[str], dict[tuple[Any, ...], dict[int, Summary]]]:
    """(label columns, {series: {eval_len: Summary over seeds}})."""
    data = mean_over_seeds(rows, value)
    return label_columns(rows), {key: {n: summarize(v) for n, v in sorted(by_len.items())}
                                 for key, by_len in data.items()}


def summary_rows(rows: Sequence[dict[str, Any]], value: str = "accuracy") -> list[dict[str, Any]]:
    """Tidy summary: one row per series and evaluation length with mean, ci_low, ci_high, seeds."""
    cols, data = summary_by_series(rows, value)
    out = []
    for key in sorted(data, key=lambda k: tuple(str(x) for x in k)):
        for n, s in data[key].items():
            out.append({**dict(zip(cols, key, strict=True)), "eval_len": n, f"{value}_mean": round(s.mean, 5),
                        "ci_low": round(s.low, 5), "ci_high": round(s.high, 5), "seeds": s.n})
    return out
