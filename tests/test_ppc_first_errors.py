"""benchmarks/ppc_first_errors.py decodes exactly as `lengen run` scores, and describes each failure."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import yaml

from lengen.cli import main

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "ppc_first_errors.py"


def _script():
    spec = importlib.util.spec_from_file_location("ppc_first_errors", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_errors_agree_with_the_run_and_point_at_real_steps(tmp_path, capsys):
    experiment = {
        "experiment": "ppc_probe", "task": "stable_partition", "task_args": {"boundary_id": "start"},
        "schemes": [{"label": "ppc", "position": "t5_bias", "position_args": {"num_buckets": 8, "max_distance": 8},
                     "model": {"position_head": True, "position_head_kind": "pointer", "pointer_keys": "embed",
                               "pointer_distance": "counts"},
                     "train": {"ids": "coupled", "position_loss_weight": 1.0}}],
        "model": {"d_model": 32, "n_layers": 2, "n_heads": 2},
        "train": {"steps": 200, "batch_size": 32, "lr": 0.003, "min_len": 1, "max_len": 4, "target_accuracy": None,
                  "select": "last", "curve_every": 0, "threads": 1},
        "eval": {"lengths": [2, 4, 8], "samples": 24, "mode": "auto"},
    }
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(experiment))
    assert main(["run", str(tmp_path / "e.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    rows = list(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    cell = next((tmp_path / "run" / "cells").iterdir())
    tool = _script()
    for row in rows:
        n = int(row["eval_len"])
        samples, errors = tool.first_errors(str(cell), n, 24)
        assert samples == 24
        exact = samples - sum(not e["answer_exact"] for e in errors)
        assert exact == round(float(row["exact_match"]) * samples)  # the same samples, decoded the same way
        for e in errors:
            assert 0 <= e["step"] <= n  # n outputs and EOS
            assert e["id_right"] or e["got_move"] != e["move"]
        tool.describe(n, samples, errors)
    # --task-args scores a variant of the evaluation task; restating the cell's own arguments changes nothing
    assert tool.first_errors(str(cell), 8, 24, task_args={"boundary_id": "start"}) == tool.first_errors(str(cell), 8, 24)
    assert tool.first_errors(str(cell), 8, 24, task_args={"kept": "random"})[0] == 24
    # the check is not vacuous: some answers are exact and some are not
    assert 0 < sum(float(r["exact_match"]) for r in rows) < len(rows)
    out = capsys.readouterr().out
    assert "answers exact (lengen run's exact_match)" in out
