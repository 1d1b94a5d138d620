"""The zoo's second predictor: the sparsity ``lengen diagnose`` estimates from each trained model.

The ground-truth k says how many tokens an answer *can* depend on; the estimate says how many the
trained model actually reads (single-position ablation, ``lengen.diagnose``). Per model that learned,
the diagnosis scores the first, middle and last answer token (of those with a non-empty dependency
set) of samples at the model's training length (one ``diagnose`` run each: a copy task's first answer
token sits next to its source, its last one far from it) and returns the mean estimated k over them, beside the mean ground-truth k of the same tokens
and the precision/recall of the estimated sets against the true ones.

Only models that consume plain ids 0..T-1 are diagnosed: a coupled or PPC model reads ids that the
task derives from the sample, which the ablation (it changes tokens one at a time) would have to
recompute per variant; those models get no estimate and are listed as skipped. Results are cached per
cell under ``RUN_DIR/zoo_diagnose/<cell>/`` (``run_diagnosis``'s resumable ``partial.json``), so a
second report reads them instead of recomputing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lengen.diagnose.ablation import AblationConfig
from lengen.diagnose.run import RunSettings, run_diagnosis, validation
from lengen.diagnose.sources import load_model, task_queries
from lengen.errors import LengenError

OUT_DIR = "zoo_diagnose"


@dataclass
class Estimate:
    task: str
    scheme: str
    seed: int
    k_est: float  # mean estimated k of the scored answers (nan when skipped)
    k_true: float  # mean ground-truth k of the same answers
    precision: float
    recall: float
    scored: int
    skipped: str  # why no estimate ("" when estimated)


def _cells(run_dir: Path) -> dict[tuple[str, str, int], tuple[Path, str]]:
    """(task, scheme label, seed) -> (cell folder, the ids its model reads)."""
    out = {}
    for f in sorted((run_dir / "cells").glob("*/cell.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        out[(d["task"], d["scheme"]["label"], int(d["seed"]))] = (f.parent, d["train"].get("ids", "plain"))
    return out


def _skip(task: str, scheme: str, seed: int, why: str) -> Estimate:
    nan = math.nan
    return Estimate(task, scheme, seed, nan, nan, nan, nan, 0, why)


def diagnose_models(run_dir: Path, models: list[tuple[str, str, int, int]], samples: int = 64,
                    seed: int = 0) -> list[Estimate]:
    """Estimate, for each (task, scheme, seed, training length), the k its trained model reads."""
    run_dir = Path(run_dir)
    cells = _cells(run_dir)
    out = []
    for task, scheme, model_seed, train_len in models:
        found = cells.get((task, scheme, model_seed))
        if found is None or not (found[0] / "checkpoint").is_dir():
            out.append(_skip(task, scheme, model_seed, "no checkpoint in the run folder"))
            continue
        cell, ids = found
        if ids != "plain":
            out.append(_skip(task, scheme, model_seed, f"reads {ids} ids (diagnose ablates tokens under plain ids)"))
            continue
        handle = load_model(cell)
        assert handle.task is not None  # a lengen checkpoint brings its task
        # answer tokens that depend on something (an end-of-answer token depends on the layout only)
        first = handle.task.sample(np.random.default_rng(seed), 1, train_len)
        informative = [j for j in range(first.answer_index.shape[1]) if bool((first.dependencies[0, j] >= 0).any())]
        records: list[dict[str, Any]] = []
        try:
            if not informative:
                raise LengenError("no answer token depends on the input")
            columns = sorted({informative[0], informative[len(informative) // 2], informative[-1]})
            queries = [task_queries(handle.task, train_len, samples, seed, answer=c) for c in columns]
        except LengenError as e:  # e.g. answers at varying positions
            out.append(_skip(task, scheme, model_seed, str(e)))
            continue
        for column, q in zip(columns, queries, strict=True):
            # the cell's folder name is a digest of its configuration: a moved run folder keeps its cache
            identity = {"cell": cell.name, "length": train_len, "samples": samples, "seed": seed, "answer": column}
            settings = RunSettings(ablation=AblationConfig(), truncation=False, progress=False)
            where = run_dir / OUT_DIR / cell.name / f"answer{column}_n{samples}_seed{seed}"
            records += run_diagnosis(handle, q, settings, where, identity)["records"]
        v = validation(records)["all"]
        out.append(Estimate(task, scheme, model_seed, float(np.mean([r["k"] for r in records])),
                            float(np.mean([len(r["truth"]) for r in records])), float(v["precision"]),
                            float(v["recall"]), len(records), ""))
    return out
