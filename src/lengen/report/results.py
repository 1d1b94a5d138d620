"""Tidy results: one row per (cell, evaluation length), written as CSV, summarised as tables."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lengen.errors import LengenError
from lengen.io import atomic_write_text

# the columns every results.csv starts with, in this order (downstream tools rely on the names)
KEY_COLUMNS = ["experiment", "task", "scheme", "k", "window", "seed", "train_min_len", "train_max_len",
               "eval_len", "accuracy", "n_eval"]


# per-row measurements, never used to tell series apart
METRIC_COLUMNS = {"exact_match", "token_accuracy", "position_accuracy", "train_steps", "train_accuracy", "stopped_early", "train_wall_s",
                  "eval_wall_s", "cell", "chance", "in_dist_accuracy", "learned", "l_star", "selected_step",
                  "eval_mode", "oracle_ids", "selector"}


def write_csv(path: Path, rows: Sequence[dict[str, Any]], first: Sequence[str] = KEY_COLUMNS) -> None:
    """Rows as CSV, the ``first`` columns in their order, then every other column by name."""
    # extra columns in a fixed order, so a resumed run writes the same file as an uninterrupted one
    extra = sorted({c for row in rows for c in row if c not in first})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(first) + extra, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


REQUIRED_COLUMNS = ("task", "scheme", "seed", "eval_len", "accuracy")  # what every report reads


def read_results(path: Path) -> list[dict[str, Any]]:
    """``read_csv`` of a run's results.csv, with one line for a file that lengen did not write."""
    try:
        rows = read_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LengenError(f"{path}: not a readable CSV file ({type(e).__name__})") from None
    missing = [c for c in REQUIRED_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise LengenError(f"{path}: not a lengen results.csv (no column {', '.join(missing)})")
    return rows


def read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            row[key] = _parse(value)
    return rows


def _parse(value: str) -> Any:
    if value == "":
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(value, value)


def series_key(row: dict[str, Any], varying: Iterable[str]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in varying)


def varying_columns(rows: Sequence[dict[str, Any]], candidates: Sequence[str]) -> list[str]:
    """The candidate columns that take more than one value in ``rows`` (what distinguishes a line)."""
    return [c for c in candidates if len({str(r.get(c)) for r in rows}) > 1]


def label_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    extra = [c for c in rows[0] if c not in KEY_COLUMNS and c not in METRIC_COLUMNS] if rows else []
    cols = varying_columns(rows, ["task", "scheme", "k", "window", *extra])
    return cols or ["scheme"]


def mean_over_seeds(rows: Sequence[dict[str, Any]], value: str = "accuracy") -> dict[tuple[Any, ...], dict[int, list[float]]]:
    """{series: {eval_len: [value per seed]}} with series named by the label columns."""
    cols = label_columns(rows)
    out: dict[tuple[Any, ...], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        out[series_key(r, cols)][int(r["eval_len"])].append(float(r[value]))
    return out


def format_table(rows: Sequence[dict[str, Any]], value: str = "accuracy") -> str:
    """A plain-text table: one line per series, one column per eval length, mean over seeds."""
    if not rows:
        return "(no results)"
    cols = label_columns(rows)
    data = mean_over_seeds(rows, value)
    lengths = display_lengths(sorted({int(r["eval_len"]) for r in rows}), max(int(r["train_max_len"]) for r in rows))
    seeds = len({r["seed"] for r in rows})
    header = [*cols, *[f"L={n}" for n in lengths]]
    lines = []
    for key in sorted(data, key=lambda k: tuple(str(x) for x in k)):
        cells = [str(x) for x in key]
        for n in lengths:
            vals = data[key].get(n, [])
            cells.append(f"{sum(vals) / len(vals):.3f}" if vals else "-")
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    title = f"{value} (mean over {seeds} seed{'s' if seeds > 1 else ''}), by evaluation length"
    return "\n".join([title, fmt.format(*header), *(fmt.format(*line) for line in lines)])


def display_lengths(lengths: Sequence[int], train_max: int, most: int = 10) -> list[int]:
    """The lengths a printed table shows: all of them, or on a fine grid the longest training length and
    the evaluated lengths nearest to its doublings (every length stays in results.csv)."""
    if len(lengths) <= most:
        return list(lengths)
    shown, target = [], train_max
    while target <= 2 * lengths[-1]:
        near = min(lengths, key=lambda n: abs(n - target))
        if near not in shown:
            shown.append(near)
        target *= 2
    return sorted(shown)


def markdown_table(rows: Sequence[dict[str, Any]], value: str = "accuracy") -> str:
    text = format_table(rows, value).splitlines()
    header, body = text[1].split(), [line.split() for line in text[2:]]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(out)


def finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
