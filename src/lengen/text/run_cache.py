"""The language analysis's cached intermediate results in a run folder (``<run>/language/``): where they
live, how a cache is fingerprinted, and how a finished cell's model is loaded. Shared by the analysis
(``lengen.text.analysis``) and its issue-14 section (``lengen.text.recovery_analysis``)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from lengen.checkpoint import load_model
from lengen.config import Cell, ExperimentConfig, LanguageConfig
from lengen.errors import LengenError

FOLDER = "language"


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _load_npz(path: Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["fingerprint"]) != fingerprint:
                return None
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError):
        return None


def _digest(*parts: Any) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(part.tobytes() if isinstance(part, np.ndarray) else json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def _cell_dir(out_dir: Path, cell: Cell) -> Path:
    return out_dir / "cells" / cell.key


def _weights_identity(out_dir: Path, cell: Cell) -> str:
    """A digest of the cell's weights: a model retrained in place invalidates the caches, while a copied
    run folder keeps them (a copy's files get new modification times, not new contents). A few MB per
    cell, read once per analysis."""
    with (_cell_dir(out_dir, cell) / "checkpoint" / "model.safetensors").open("rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def _finished_dir(out_dir: Path, cell: Cell) -> Path:
    folder = _cell_dir(out_dir, cell)
    if not (folder / "rows.json").is_file():
        raise LengenError(f"cell {cell.key} has not finished training; run the experiment first")
    return folder


def _load_cell_model(out_dir: Path, cell: Cell) -> Any:
    return load_model(_finished_dir(out_dir, cell)).model


def reference_cell(cfg: ExperimentConfig, lang: LanguageConfig) -> Cell:
    cells = [c for c in cfg.cells() if c.scheme.label == lang.reference]
    if not cells:
        raise LengenError(f"language: no cell has the reference scheme {lang.reference!r}")
    return cells[0]  # the first seed's model measures dependence for every model
