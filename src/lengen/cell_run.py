"""One cell, start to finish: train (or resume), evaluate at every length and setting, mark it done.

Every backend (``lengen.backends``: local processes, Ray, DDP) calls ``run_cell`` on the same cell
with the same thread count, so a cell's numbers do not depend on where it ran.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from lengen.config import Cell, eval_settings
from lengen.errors import LengenError
from lengen.evaluate import evaluate
from lengen.io import atomic_write_json
from lengen.report.results import write_csv
from lengen.rows import cell_rows, with_protocol_columns
from lengen.train import train

ROWS_FILE = "rows.json"
METRICS_FILE = "metrics.csv"


def read_rows(cell_dir: Path) -> list[dict[str, Any]] | None:
    """A finished cell's rows, or None when the cell has not finished (no complete rows.json)."""
    try:
        rows: list[dict[str, Any]] = json.loads((Path(cell_dir) / ROWS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise LengenError(f"{Path(cell_dir) / ROWS_FILE}: unreadable ({e.__class__.__name__}); delete it to rerun "
                          f"that cell") from None
    return rows


def run_cell(cell: Cell, cell_dir: Path, progress: bool = True, threads: int | None = None) -> list[dict[str, Any]]:
    """Train (or resume) and evaluate one cell; returns its rows and marks it done on disk."""
    if threads is not None:
        torch.set_num_threads(threads)
    rows = read_rows(cell_dir)
    if rows is not None:
        return rows
    atomic_write_json(cell_dir / "cell.json", cell.to_dict())
    result = train(cell, out_dir=cell_dir, resume=True, progress=progress)
    write_metrics(cell_dir / METRICS_FILE, result.history)
    start = time.perf_counter()
    info = {
        "train_steps": result.steps,
        "train_accuracy": round(result.train_accuracy, 5),
        "stopped_early": result.stopped_early,
        "train_wall_s": round(result.wall_s, 1),
    }
    if cell.protocol:
        info["selected_step"] = result.selected_step if result.selected_step is not None else result.steps
    rows = []
    for setting in eval_settings(cell):
        task = cell.build_eval_task(setting)
        # the longest training length is always scored: it decides the learned flag
        scored = cell.protocol and task.exact_match_protocol
        lengths = sorted(set(cell.eval.lengths) | ({cell.train.max_len} if scored else set()))
        results = evaluate(result.model, task, lengths, cell.eval.samples, cell.eval.seed, cell.train.ids,
                           cell.eval.mode, cell.eval.restrict_ids)
        if scored:
            results = with_protocol_columns(cell, task, results)
        rows += [{**row, **setting} for row in cell_rows(cell, results, info)]
    for row in rows:
        row["eval_wall_s"] = round(time.perf_counter() - start, 1)
    atomic_write_json(cell_dir / ROWS_FILE, rows)
    return rows


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """A cell's training curves as a tidy CSV: one row per (step, metric, setting, eval_len)."""
    rows: list[dict[str, Any]] = []
    for h in history:
        for metric in ("loss", "accuracy", "lr"):
            if metric in h:
                rows.append({"step": h["step"], "metric": "train_" + metric if metric != "lr" else "lr",
                             "setting": "", "eval_len": "", "value": h[metric]})
        for setting, value in h.get("target", {}).items():
            rows.append({"step": h["step"], "metric": "target_exact", "setting": setting, "eval_len": "",
                         "value": value})
        for setting, length, value in h.get("curves", []):
            rows.append({"step": h["step"], "metric": "exact", "setting": setting, "eval_len": length, "value": value})
    write_csv(path, rows, first=["step", "metric", "setting", "eval_len", "value"])
