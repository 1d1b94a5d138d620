"""A cell's result rows: one per evaluation length (and setting), with the protocol's columns."""

from __future__ import annotations

from typing import Any

from lengen.config import Cell
from lengen.measures import l_star, l_star_threshold
from lengen.tasks import Task


def cell_rows(cell: Cell, results: list[dict[str, Any]], train_info: dict[str, Any]) -> list[dict[str, Any]]:
    base = {
        "experiment": cell.experiment,
        "task": cell.task,
        "scheme": cell.scheme.label,
        "k": cell.task_args.get("k"),
        "window": cell.task_args.get("window"),
        "seed": cell.seed,
        "train_min_len": cell.train.min_len,
        "train_max_len": cell.train.max_len,
    }
    extra = {k: v for k, v in cell.grid_values.items() if k not in base}
    return [{**base, **r, **extra, **train_info} for r in results]


def with_protocol_columns(cell: Cell, task: Task, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add chance, in_dist_accuracy, learned and l_star (``lengen.measures``) to one setting's rows."""
    chance = task.chance_accuracy()
    by_len = {r["eval_len"]: r["exact_match"] for r in results}
    in_dist = by_len[cell.train.max_len]
    star = l_star(by_len.items(), l_star_threshold(chance, cell.eval.l_star_level))
    return [{**r, "chance": round(chance, 5), "in_dist_accuracy": in_dist, "learned": in_dist >= cell.eval.learned_bar,
             "l_star": star} for r in results]
