"""The benchmark scripts still run and print what they promise (their --quick modes; no timings checked)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lengen.tasks import TASKS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_quick(script: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) > 1, "a human-readable report comes before the JSON line"
    result: dict[str, Any] = json.loads(lines[-1])
    assert result["quick"] is True
    assert result["benchmark"] == script.removesuffix(".py")
    assert result["machine"]["cpu_count"] >= 1
    return result


def positive(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_train_throughput_compares_models_of_equal_flops():
    pytest.importorskip("transformers")
    result = run_quick("train_throughput.py")
    assert positive(result["matmul_peak_flops"])
    (size,) = result["sizes"]
    ours, theirs = size["lengen"], size["transformers"]
    # the comparison is only fair if both models do the same matmuls per token
    assert ours["fwd_flops_per_token"] == theirs["fwd_flops_per_token"]
    assert ours["counted_linear_flops_per_token"] == theirs["counted_linear_flops_per_token"]
    for c in (ours, theirs):
        assert positive(c["tokens_per_s"]) and positive(c["tokens_per_wall_s"]) and 0 < c["mfu"] <= 1
    assert size["ratio_lengen_over_transformers"] == pytest.approx(
        ours["tokens_per_s"] / theirs["tokens_per_s"], rel=0.01)


def test_data_generation_covers_every_task():
    result = run_quick("data_generation.py")
    assert positive(result["trainer_tokens_per_s"])
    assert sorted(r["task"] for r in result["tasks"]) == sorted(TASKS.names())
    for r in result["tasks"]:
        assert positive(r["tokens_per_s"])
        assert r["ratio_to_trainer"] == pytest.approx(r["tokens_per_s"] / result["trainer_tokens_per_s"], rel=0.01)


def test_evaluation_reports_time_and_memory_per_length():
    result = run_quick("evaluation.py")
    assert [r["length"] for r in result["lengths"]] == [10, 20]
    for r in result["lengths"]:
        assert positive(r["wall_s"]) and r["peak_rss_delta_mib"] >= 0 and 0 <= r["accuracy"] <= 1
    assert result["total_wall_s"] == pytest.approx(sum(r["wall_s"] for r in result["lengths"]), abs=0.02)


def test_default_job_runs_the_cli_and_writes_results():
    result = run_quick("default_job.py")
    assert positive(result["wall_s"]) and positive(result["cpu_s"])
    assert result["rows"] == 2  # one cell, two evaluation lengths
