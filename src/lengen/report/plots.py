"""Accuracy against evaluation length, one line per series, with the range over seeds shaded."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display needed, and never one picked up by accident
import matplotlib.pyplot as plt  # noqa: E402

from lengen.io import atomic_write_bytes  # noqa: E402
from lengen.report.results import label_columns, mean_over_seeds  # noqa: E402


def plot_accuracy_vs_length(rows: Sequence[dict[str, Any]], path: Path, value: str = "accuracy",
                            title: str | None = None) -> None:
    cols = label_columns(rows)
    data = mean_over_seeds(rows, value)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key in sorted(data, key=lambda k: tuple(str(x) for x in k)):
        lengths = sorted(data[key])
        mean = [sum(data[key][n]) / len(data[key][n]) for n in lengths]
        lo = [min(data[key][n]) for n in lengths]
        hi = [max(data[key][n]) for n in lengths]
        label = ", ".join(f"{c}={v}" if c != "scheme" else str(v) for c, v in zip(cols, key, strict=True))
        (line,) = ax.plot(lengths, mean, marker="o", ms=3, label=label)
        if any(h > low for h, low in zip(hi, lo, strict=True)):
            ax.fill_between(lengths, lo, hi, color=line.get_color(), alpha=0.15)
    train_max = max(int(r["train_max_len"]) for r in rows)
    ax.axvline(train_max, color="gray", ls="--", lw=1)
    ax.text(train_max, 0.02, " longest training length", color="gray", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("evaluation length")
    ax.set_ylabel(value.replace("_", " "))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    seeds = len({r["seed"] for r in rows})
    ax.set_title(title or f"{rows[0]['experiment']}: {value} vs length ({seeds} seed{'s' if seeds > 1 else ''};"
                 f" band: min-max)", fontsize=10)
    ax.legend(fontsize=7, loc="lower left", ncol=2 if len(data) > 6 else 1)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
