"""Plain-language conclusions computed from results: which settings generalize to which lengths.

A series *holds* at a length when its mean accuracy over seeds is at least ``THRESHOLD``; its *reach*
is the longest evaluated length up to which it holds at every evaluated length (0 when it fails
already at the shortest). Sentences are generated from these numbers only, never written by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lengen.report.aggregate import Summary, summary_by_series

THRESHOLD = 0.95


def reach(by_len: dict[int, Summary], threshold: float = THRESHOLD) -> int:
    """The longest length L such that mean accuracy >= threshold at every evaluated length <= L."""
    best = 0
    for n in sorted(by_len):
        if by_len[n].mean < threshold:
            break
        best = n
    return best


def _name(cols: Sequence[str], key: Sequence[Any]) -> str:
    parts = [str(v) if c == "scheme" else f"{c}={v}" for c, v in zip(cols, key, strict=True)]
    return ", ".join(parts) or "the model"


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def beyond(by_len: dict[int, Summary], train_max: int) -> float:
    """Mean accuracy over the evaluated lengths beyond training (a tie-breaker between equal reaches)."""
    longer = [s.mean for n, s in by_len.items() if n > train_max]
    return sum(longer) / len(longer) if longer else float("nan")


def conclusions(rows: Sequence[dict[str, Any]], threshold: float = THRESHOLD) -> list[str]:
    """A few sentences: per series reach, how reach changes with k, which scheme reaches furthest."""
    if not rows:
        return ["There are no finished results yet."]
    cols, data = summary_by_series(rows)
    train_max = max(int(r["train_max_len"]) for r in rows)
    longest = max(int(r["eval_len"]) for r in rows)
    seeds = len({r["seed"] for r in rows})
    out = [f"Criterion: a setting generalizes to length L when its mean accuracy over {seeds} seed"
           f"{'s' if seeds > 1 else ''} is at least {threshold:.2f} at every evaluated length up to L. "
           f"Training lengths went up to {train_max}; the longest evaluated length is {longest}."]
    for key in sorted(data, key=_order):
        by_len = data[key]
        r = reach(by_len, threshold)
        first_fail = next((n for n in sorted(by_len) if by_len[n].mean < threshold), None)
        name = _name(cols, key)
        if first_fail is None:
            out.append(f"{name}: generalizes to every evaluated length, up to {r} ({r / train_max:.1f}x the "
                       f"longest training length).")
        elif r == 0:
            out.append(f"{name}: below {threshold:.2f} already at length {first_fail} "
                       f"(accuracy {_fmt(by_len[first_fail].mean)}).")
        else:
            tail = "" if first_fail == longest else f", at {longest} it is {_fmt(by_len[longest].mean)}"
            how = f"generalizes up to length {r} ({r / train_max:.1f}x)" if r > train_max else \
                f"holds up to length {r} only, within the training lengths"
            out.append(f"{name}: {how}; at {first_fail} accuracy is {_fmt(by_len[first_fail].mean)}{tail}.")
    if "k" in cols:
        out += _trend_in_k(cols, data, threshold)
    if "scheme" in cols:
        out += _best_scheme(cols, data, threshold, train_max)
    return out


def _order(key: Sequence[Any]) -> tuple[tuple[int, Any], ...]:
    return tuple((0, v) if isinstance(v, int | float) else (1, str(v)) for v in key)


def _groups(cols: Sequence[str], data: dict[tuple[Any, ...], dict[int, Summary]], vary: str
            ) -> dict[tuple[Any, ...], dict[Any, dict[int, Summary]]]:
    """{the other columns' values: {value of ``vary``: series}}."""
    i = cols.index(vary)
    out: dict[tuple[Any, ...], dict[Any, dict[int, Summary]]] = {}
    for key, series in data.items():
        out.setdefault(key[:i] + key[i + 1:], {})[key[i]] = series
    return out


def _trend_in_k(cols: Sequence[str], data: dict[tuple[Any, ...], dict[int, Summary]], threshold: float
                ) -> list[str]:
    others = [c for c in cols if c != "k"]
    out = []
    for rest, by_k in sorted(_groups(cols, data, "k").items(), key=lambda kv: _order(kv[0])):
        ks = sorted(k for k in by_k if isinstance(k, int | float))
        if len(ks) < 2:
            continue
        reaches = [reach(by_k[k], threshold) for k in ks]
        if len(set(reaches)) == 1:
            trend = "is the same for every k"
        elif all(a >= b for a, b in zip(reaches, reaches[1:], strict=False)):
            trend = "shrinks as k grows"
        else:
            trend = "does not shrink monotonically with k"
        values = ", ".join(f"k={k}: {r}" for k, r in zip(ks, reaches, strict=True))
        who = _name(others, rest) if others else "Across k"
        out.append(f"{who}: the longest length it generalizes to {trend} ({values}).")
    return out


def _best_scheme(cols: Sequence[str], data: dict[tuple[Any, ...], dict[int, Summary]], threshold: float,
                 train_max: int) -> list[str]:
    others = [c for c in cols if c != "scheme"]
    out = []
    for rest, by_scheme in sorted(_groups(cols, data, "scheme").items(), key=lambda kv: _order(kv[0])):
        if len(by_scheme) < 2:
            continue
        ranked = sorted(by_scheme, key=lambda s: (-reach(by_scheme[s], threshold),
                                                  -beyond(by_scheme[s], train_max), str(s)))
        where = f"{_name(others, rest)}: " if others else ""
        values = ", ".join(f"{s} (to {reach(by_scheme[s], threshold)}, mean beyond training "
                           f"{_fmt(beyond(by_scheme[s], train_max))})" for s in ranked)
        out.append(f"{where}schemes ranked by how far they generalize: {values}.")
    return out
