"""Figures from tidy results: accuracy against length with a 95% interval over seeds, and heatmaps.

Every figure is rendered to PNG bytes first (``render_*``), so the HTML report can embed the same
image that is written next to the results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lengen.figures import png, pyplot
from lengen.io import atomic_write_bytes
from lengen.report.aggregate import summary_by_series
from lengen.report.results import display_lengths, label_columns


def _order(v: Any) -> tuple[int, Any]:
    """Numbers in numeric order first, then everything else by name."""
    return (0, v) if isinstance(v, int | float) and not isinstance(v, bool) else (1, str(v))


def _series_label(cols: Sequence[str], key: Sequence[Any]) -> str:
    return ", ".join(f"{c}={v}" if c != "scheme" else str(v) for c, v in zip(cols, key, strict=True))


def render_accuracy_vs_length(rows: Sequence[dict[str, Any]], value: str = "accuracy",
                              title: str | None = None) -> bytes:
    """One line per series (mean over seeds), the 95% t-interval over seeds shaded."""
    cols, data = summary_by_series(rows, value)
    fig, ax = pyplot().subplots(figsize=(7, 4.2))
    for key in sorted(data, key=lambda k: tuple(_order(x) for x in k)):
        lengths = list(data[key])
        stats = [data[key][n] for n in lengths]
        (line,) = ax.plot(lengths, [s.mean for s in stats], marker="o", ms=3, label=_series_label(cols, key))
        if any(s.n > 1 for s in stats):
            ax.fill_between(lengths, [s.low for s in stats], [s.high for s in stats], color=line.get_color(),
                            alpha=0.15)
    train_max = max(int(r["train_max_len"]) for r in rows)
    ax.axvline(train_max, color="gray", ls="--", lw=1)
    ax.text(train_max, 0.02, " longest training length", color="gray", fontsize=8)
    ax.set_xscale("log", base=2)
    ticks = sorted({int(r["eval_len"]) for r in rows})
    ticks = display_lengths(ticks, train_max)  # a fine grid: the lengths nearest the training length's doublings
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.minorticks_off()
    ax.set_xlabel("evaluation length")
    ax.set_ylabel(value.replace("_", " "))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    seeds = len({r["seed"] for r in rows})
    band = "; band: 95% t-interval" if seeds > 1 else ""
    ax.set_title(title or f"{rows[0]['experiment']}: {value} vs length ({seeds} seed{'s' if seeds > 1 else ''}"
                 f"{band})", fontsize=10)
    ax.legend(fontsize=7, loc="best", ncol=2 if len(data) > 6 else 1)
    fig.tight_layout()
    return png(fig)


def plot_accuracy_vs_length(rows: Sequence[dict[str, Any]], path: Path, value: str = "accuracy",
                            title: str | None = None) -> None:
    atomic_write_bytes(path, render_accuracy_vs_length(rows, value, title))


def render_heatmap(rows: Sequence[dict[str, Any]], row_col: str, value: str = "accuracy") -> bytes | None:
    """Mean ``value`` over seeds on a (``row_col``, evaluation length) grid, one panel per combination of
    the other varying columns. None unless ``row_col`` takes at least two values in the results."""
    if len({str(r.get(row_col)) for r in rows} - {"None"}) < 2:  # one row or none: nothing to compare
        return None
    others = [c for c in label_columns(rows) if c != row_col]
    _, data = summary_by_series(rows, value)
    cols = label_columns(rows)
    lengths = sorted({int(r["eval_len"]) for r in rows})
    panels: dict[tuple[Any, ...], dict[Any, dict[int, float]]] = {}
    for key, by_len in data.items():
        named = dict(zip(cols, key, strict=True))
        row_value = named[row_col] if row_col in named else rows[0].get(row_col)  # constant: one row
        panel = tuple(named[c] for c in others)
        panels.setdefault(panel, {})[row_value] = {n: s.mean for n, s in by_len.items()}
    order = sorted(panels, key=lambda k: tuple(str(x) for x in k))
    ncols = min(3, len(order))
    nrows = math.ceil(len(order) / ncols)
    height = 1.2 + nrows * (1.0 + 0.4 * max(len(p) for p in panels.values()))
    fig, axes = pyplot().subplots(nrows, ncols, figsize=(1.2 + 4.2 * ncols, height), squeeze=False,
                             layout="constrained")
    image = None
    for ax, panel in zip(axes.flat, order, strict=False):
        labels = sorted(panels[panel], key=_order)
        grid = [[panels[panel][lab].get(n, math.nan) for n in lengths] for lab in labels]
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, line in enumerate(grid):
            for j, v in enumerate(line):
                if math.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if v > 0.6 else "white")
        ax.set_xticks(range(len(lengths)), [str(n) for n in lengths], fontsize=7)
        ax.set_yticks(range(len(labels)), [str(lab) for lab in labels], fontsize=7)
        ax.set_xlabel("evaluation length", fontsize=8)
        ax.set_ylabel(row_col, fontsize=8)
        ax.set_title(_series_label(others, panel) if others else "", fontsize=8)
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label=f"mean {value.replace('_', ' ')}")
    fig.suptitle(f"{rows[0]['experiment']}: mean {value} over seeds by {row_col} and evaluation length",
                 fontsize=9)
    return png(fig)


def render_curves(curves: Sequence[dict[str, Any]], train_max: int) -> bytes | None:
    """Held-out exact match against training step (``metrics.csv``): one panel for the training length
    (what stopping reads) and one per curve length, a line per target setting (mean over cells)."""
    if not curves:
        return None
    panels = [None, *sorted({c["eval_len"] for c in curves if c["eval_len"] is not None})]
    settings = sorted({c["setting"] for c in curves}, key=lambda s: [_order(p) for p in s.replace("=", " ").split()])
    fig, axes = pyplot().subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), sharey=True, squeeze=False)
    for ax, length in zip(axes[0], panels, strict=True):
        for i, setting in enumerate(settings):
            color = f"C{i % 10}"
            mine = [c for c in curves if c["setting"] == setting and c["eval_len"] == length]
            cells = sorted({c["cell"] for c in mine})
            points: dict[int, list[float]] = {}
            for cell in cells:  # each cell thin, so early stops stay visible
                own = sorted((c["step"], c["value"]) for c in mine if c["cell"] == cell)
                ax.plot([p[0] for p in own], [p[1] for p in own], color=color, lw=0.6, alpha=0.3)
                for step, value in own:
                    points.setdefault(step, []).append(value)
            # the mean only where most cells were still training: a step only one early-stopped cell
            # reached would otherwise show that one cell as the mean
            steps = sorted(t for t in points if 2 * len(points[t]) >= len(cells))
            if steps:
                ax.plot(steps, [sum(points[t]) / len(points[t]) for t in steps], color=color, marker=".", ms=3,
                        label=setting)
        name = f"L={train_max} (stopping)" if length is None else f"L={length} ({length // max(1, train_max)}x)"
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out exact match")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return png(fig)
