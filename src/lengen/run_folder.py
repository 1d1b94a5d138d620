"""Output folders: one experiment per folder, never overwritten by another, no stale temp files.

A run folder is identified by its ``experiment.yaml``. Running the *same* experiment into it again
resumes; running a *different* one is refused with the first difference named, unless the caller
forces it, and then the old contents are moved aside (``<folder>.replaced-<time>``), never deleted.
"Same" means the same cells (their keys are digests of every setting that changes a result, with
settings left at their defaults dropped, so a lengen upgrade that adds an option still resumes) and
the same language analysis and idealized learner; ``workers`` and ``description`` do not matter.
An experiment that *extends* the folder's (the same, with cells added: more seeds, schemes or tasks)
also resumes: the cells already there keep their keys and are not retrained, only the new ones run,
and the folder's ``experiment.yaml`` becomes the extended one. Dropping a cell is a difference.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from lengen.config import ExperimentConfig
from lengen.config_parse import parse_experiment
from lengen.errors import LengenError
from lengen.validate import short_repr
from lengen.yaml_input import load_yaml

CONFIG_FILE = "experiment.yaml"
OUTPUT_NAMES = ("results.csv", "cells", "report.html", "table.txt")  # what only a lengen run folder holds
IGNORED = ("workers", "description")  # change nothing a run computes


def identity(cfg: ExperimentConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    return {"experiment": cfg.experiment, "cells": sorted(cell.key for cell in cfg.cells()),
            "language": d.get("language"), "idealized": d.get("idealized")}


def first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """The first key path at which two parsed configurations differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if not path and key in IGNORED:
                continue
            sub = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                return f"{sub}: {'absent' if key not in old else short_repr(old[key])} in the folder, " \
                       f"{'absent' if key not in new else short_repr(new[key])} now"
            found = first_difference(old[key], new[key], sub)
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if old == new else f"{path}: {short_repr(old)} in the folder, {short_repr(new)} now"


def as_written_back(raw: Any) -> Any:
    """An ``ExperimentConfig.to_dict()`` as an experiment file: it spells out an empty grid, and the
    first task's name beside a ``tasks`` list, which a hand-written file may not."""
    if not isinstance(raw, dict):
        return raw
    out = {k: v for k, v in raw.items() if not (k == "grid" and v == {})}
    if out.get("tasks"):
        out.pop("task", None)
        out.pop("task_args", None)
    return out


def check_folder(cfg: ExperimentConfig, out_dir: Path, force: bool = False) -> None:
    """Refuse ``out_dir`` when it holds a different experiment (or lengen outputs of an unknown one);
    with ``force``, move its contents aside instead. Nothing is written when it refuses."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LengenError(f"output folder {out_dir} is a file")
    if not out_dir.is_dir():
        return
    why = _difference(cfg, out_dir)
    if why is None:
        return
    if not force:
        raise LengenError(f"output folder {out_dir} holds a different experiment ({why}); choose another --out, "
                          f"or pass --force to move its contents aside and start afresh")
    aside = out_dir.with_name(f"{out_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        n += 1
        aside = aside.with_name(f"{out_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    try:
        out_dir.rename(aside)
    except OSError as e:
        raise LengenError(f"cannot move {out_dir} aside to {aside}: {e.strerror}") from None
    print(f"lengen: --force: moved the previous contents of {out_dir} to {aside}", flush=True)


def _difference(cfg: ExperimentConfig, out_dir: Path) -> str | None:
    stored = out_dir / CONFIG_FILE
    if not stored.is_file():
        present = [name for name in OUTPUT_NAMES if (out_dir / name).exists()]
        return f"{present[0]} but no {CONFIG_FILE}" if present else None
    try:
        raw = load_yaml(stored.read_text(encoding="utf-8"))
        old = parse_experiment(as_written_back(raw), str(stored))
    except (LengenError, OSError, ValueError) as e:  # ValueError covers YAML and decoding errors
        return f"its {CONFIG_FILE} cannot be read by this lengen: {short_repr(str(e), 120)}"
    before, now = identity(old), identity(cfg)
    if before == now or extends(now, before):
        return None
    return first_difference(raw, cfg.to_dict()) or "the cells differ"


def extends(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Identity ``new`` is ``old`` with cells added (e.g. more seeds) and nothing else changed: every
    cell of ``old`` is a cell of ``new`` (same key, so same settings), and so are the experiment's name,
    its language analysis and its idealized learner."""
    def rest(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k != "cells"}
    return rest(new) == rest(old) and set(old["cells"]) <= set(new["cells"])


def clean_stale_temp(out_dir: Path) -> list[Path]:
    """Remove what a killed run leaves half-written: lengen.io's hidden ``.<name>.<random>.tmp`` files,
    checkpoint folders being written (``checkpoint.tmp``) and the writability probe. Returns them."""
    removed = []
    for path in sorted(Path(out_dir).rglob("*.tmp")):
        if path.is_file() and path.name.startswith("."):
            path.unlink(missing_ok=True)
            removed.append(path)
        elif path.is_dir() and path.name == "checkpoint.tmp":
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    probe = Path(out_dir) / ".lengen-write-probe"
    if probe.exists():
        probe.unlink(missing_ok=True)
        removed.append(probe)
    return removed
