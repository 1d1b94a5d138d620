"""Figures of the language analysis: loss against position per scheme, and grouped bars per bucket
(loss increase here, gain recovered in ``lengen.text.recovery_analysis``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lengen.figures import png, pyplot
from lengen.io import atomic_write_bytes


@dataclass
class Curve:
    label: str
    position: str  # the position scheme's name: one panel per scheme
    loss: np.ndarray  # [C-1]: mean loss of the token at position p in column p - 1
    reference: bool = False


def render_loss_vs_position(curves: Sequence[Curve], near: int, bin_size: int) -> bytes:
    """One panel per position scheme (its variants, e.g. with and without PoSE, share a panel), the
    reference model in every panel; mean loss over windows in bins of ``bin_size`` positions."""
    schemes = sorted({c.position for c in curves if not c.reference})
    refs = [c for c in curves if c.reference]
    cols = min(3, len(schemes))
    rows = math.ceil(len(schemes) / cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(max(6.0, 4.2 * cols), 3.2 * rows + 0.4), squeeze=False, sharey=True)
    top = max(float(np.nanmax(c.loss)) for c in curves)
    for ax, scheme in zip(axes.flat, schemes, strict=False):
        for c in [c for c in curves if c.position == scheme and not c.reference] + refs:
            n = len(c.loss) // bin_size * bin_size
            x = np.arange(1, n + 1).reshape(-1, bin_size).mean(1)
            y = c.loss[:n].reshape(-1, bin_size).mean(1)
            ax.plot(x, y, label=c.label, color="0.4" if c.reference else None,
                    linestyle="--" if c.reference else "-", linewidth=1.4)
        ax.axvline(near + 1, color="0.6", linewidth=0.8, linestyle=":")
        ax.set_title(scheme)
        ax.set_xlabel("position of the predicted token")
        ax.set_ylim(0, min(top * 1.05, 12))
        ax.legend(fontsize=7)
    for ax in axes.flat[len(schemes):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation loss (nats/token)")
    fig.suptitle(f"Validation loss by position (dotted: end of the {near + 1}-token training context; "
                 "dashed: the reference model)", fontsize=9)
    fig.tight_layout()
    return png(fig)


def plot_loss_vs_position(curves: Sequence[Curve], near: int, bin_size: int, path: Path) -> None:
    atomic_write_bytes(path, render_loss_vs_position(curves, near, bin_size))


def render_loss_by_bucket(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> bytes:
    """Grouped bars: per model, the loss increase beyond the training context in each bucket (95%
    interval over tokens)."""
    several = len({r["seed"] for r in rows}) > 1
    beyond: dict[tuple[str, str], dict[str, Any]] = {}  # (model label, bucket) -> its first row
    for r in rows:
        if r["range"] == "beyond" and r["bucket"] in names:
            beyond.setdefault((f"{r['scheme']} s{r['seed']}" if several else r["scheme"], r["bucket"]), r)
    labels = list(dict.fromkeys(label for label, _ in beyond))
    bars = []
    for name in names:
        found = [beyond.get((label, name)) for label in labels]
        bars.append((name, [r["loss_increase"] if r else np.nan for r in found],
                     [r["increase_ci"] if r else np.nan for r in found]))
    return render_grouped_bars(labels, bars,
                               "loss increase beyond training context\n(whole window - near context), nats",
                               "distant tokens needed")


def render_grouped_bars(labels: Sequence[str], bars: Sequence[tuple[str, Any, Any]], ylabel: str,
                        legend_title: str, guides: Sequence[float] = ()) -> bytes:
    """Grouped bars: a group per label (e.g. a model), in it a bar per ``(name, values, yerr)`` of
    ``bars`` (e.g. a bucket; values and errors per label, nan for none; the legend names them), a line
    at 0 and a dotted line at each of ``guides``."""
    fig, ax = pyplot().subplots(figsize=(max(6.0, 0.9 * len(labels) + 2), 3.8))
    width = 0.8 / len(bars)
    for i, (name, vals, errs) in enumerate(bars):
        ax.bar(np.arange(len(labels)) + (i - (len(bars) - 1) / 2) * width, vals, width, yerr=errs,
               label=name, capsize=2)
    ax.axhline(0, color="0.3", linewidth=0.8)
    for y in guides:
        ax.axhline(y, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(title=legend_title, fontsize=8)
    fig.tight_layout()
    return png(fig)


def plot_loss_by_bucket(rows: Sequence[dict[str, Any]], names: Sequence[str], path: Path) -> None:
    atomic_write_bytes(path, render_loss_by_bucket(rows, names))
