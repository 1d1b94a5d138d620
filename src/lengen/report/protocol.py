"""What the protocol's columns say: which models learned, L* over seeds, and how L* ranks with k.

Findings count only models that learned their task in distribution (``learned``); the others are
listed, never averaged in. L* (``lengen.measures``) is summarised per series by its mean over seeds
with a 95% t-interval, and the trend with a varying column (k, span, ...) by Spearman's rank
correlation per seed, whose seed mean and interval are reported.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lengen import stats
from lengen.report.aggregate import summarize
from lengen.report.results import label_columns


def _identity(row: dict[str, Any], cols: Sequence[str]) -> tuple[Any, ...]:
    return (*(row.get(c) for c in cols), row.get("seed"))


def excluded_models(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows of models that learned, [identity of each model that did not]); rows without a learned
    column (runs made before the protocol) are all kept."""
    cols = label_columns(rows)
    kept, out, seen = [], [], set()
    for r in rows:
        if r.get("learned") is False:
            ident = _identity(r, cols)
            if ident not in seen:
                seen.add(ident)
                out.append({**{c: r.get(c) for c in cols}, "seed": r.get("seed")})
        else:
            kept.append(r)
    return kept, out


def _per_model(rows: Sequence[dict[str, Any]], value: str) -> dict[tuple[Any, ...], float]:
    cols = label_columns(rows)
    return {_identity(r, cols): float(r[value]) for r in rows if r.get(value) is not None}


def l_star_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per series: L* mean over its models (seeds), 95% t-interval, number of models."""
    cols = label_columns(rows)
    by_series: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for ident, star in _per_model(rows, "l_star").items():
        by_series[ident[:-1]].append(star)
    out = []
    for key in sorted(by_series, key=lambda k: tuple(str(x) for x in k)):
        s = summarize(by_series[key], lower=0.0, upper=math.inf)
        out.append({**dict(zip(cols, key, strict=True)), "l_star_mean": round(s.mean, 1),
                    "ci_low": round(s.low, 1), "ci_high": round(s.high, 1), "models": s.n})
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side does not vary."""
    rho = stats.spearman(x, y)
    return None if math.isnan(rho) else rho


def rank_correlations(rows: Sequence[dict[str, Any]], column: str = "k") -> list[dict[str, Any]]:
    """Per series of the other label columns: Spearman of ``column`` against L* for each seed (over that
    seed's learned models), then the seed mean with a 95% t-interval."""
    cols = label_columns(rows)
    if column not in cols:
        return []
    others = [c for c in cols if c != column]
    points: dict[tuple[Any, ...], dict[Any, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for ident, star in _per_model(rows, "l_star").items():
        named = dict(zip([*cols, "seed"], ident, strict=True))
        points[tuple(named[c] for c in others)][named["seed"]].append((float(named[column]), star))
    out = []
    for key in sorted(points, key=lambda k: tuple(str(x) for x in k)):
        per_seed = {seed: spearman([p[0] for p in pts], [p[1] for p in pts]) for seed, pts in points[key].items()}
        values = [v for v in per_seed.values() if v is not None]
        if not values:
            continue
        s = summarize(values, lower=-1.0, upper=1.0)
        out.append({**dict(zip(others, key, strict=True)), "x": column, "spearman_mean": round(s.mean, 3),
                    "ci_low": round(s.low, 3), "ci_high": round(s.high, 3), "seeds": s.n,
                    "per_seed": {str(k): (None if v is None else round(v, 3)) for k, v in sorted(per_seed.items())}})
    return out


def read_curves(run_dir: Path) -> list[dict[str, Any]]:
    """Every cell's metrics.csv rows that score held-out samples, with the cell folder name."""
    out: list[dict[str, Any]] = []
    for path in sorted(Path(run_dir).glob("cells/*/metrics.csv")):
        with open(path, encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                if r["metric"] in ("target_exact", "exact"):
                    out.append({"cell": path.parent.name, "step": int(r["step"]), "metric": r["metric"],
                                "setting": r["setting"], "eval_len": int(r["eval_len"]) if r["eval_len"] else None,
                                "value": float(r["value"])})
    return out


def summary_text(rows: Sequence[dict[str, Any]]) -> str:
    """The protocol's plain-text summary: L* per series, the rank correlation with k, who was left out."""
    if not any("l_star" in r for r in rows):
        return ""
    kept, excluded = excluded_models(rows)
    lines = []
    if kept:
        stars = l_star_rows(kept)
        cols = [c for c in stars[0] if c not in ("l_star_mean", "ci_low", "ci_high", "models")]
        lines.append("L* (longest length held; mean over models that learned, 95% t-interval)")
        for s in stars:
            name = ", ".join(f"{c}={s[c]}" for c in cols)
            lines.append(f"  {name}: {s['l_star_mean']:.0f} [{s['ci_low']:.0f}, {s['ci_high']:.0f}] ({s['models']} models)")
        for corr in rank_correlations(kept):
            lines.append(f"Spearman of {corr['x']} against L*: {corr['spearman_mean']:+.2f} "
                         f"[{corr['ci_low']:+.2f}, {corr['ci_high']:+.2f}] over {corr['seeds']} seeds")
    lines.append(f"left out (did not learn in distribution): {len(excluded)}"
                 + (": " + "; ".join(" ".join(f"{k}={v}" for k, v in e.items()) for e in excluded) if excluded else ""))
    return "\n".join(lines)
