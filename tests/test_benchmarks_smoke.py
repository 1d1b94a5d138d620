"""The benchmark scripts still run and print what they promise (their --quick modes; no timings checked)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from lengen.tasks import TASKS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_quick(script: str, *extra: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick", *extra], capture_output=True,
                          text=True, timeout=600)
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error given where there is no GPU")
def test_train_throughput_on_cuda_without_a_gpu_is_a_clear_error():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "train_throughput.py"), "--quick", "--device", "cuda"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--device cuda: torch sees no CUDA device here" in proc.stderr


@pytest.mark.slow
def test_train_throughput_compiles_both_models_and_splits_their_time():
    pytest.importorskip("transformers")
    result = run_quick("train_throughput.py", "--compile", "--breakdown")
    (size,) = result["sizes"]
    for name in ("lengen", "transformers", "lengen+compile", "transformers+compile"):
        c = size[name]
        parts = c["breakdown_s_per_step"]
        assert all(parts[k] >= 0 for k in ("matmul", "attention", "other"))
        assert parts["total"] == pytest.approx(parts["matmul"] + parts["attention"] + parts["other"], abs=1e-3)
        # compiled twins are counted on their eager models: the same matmuls as the others
        assert c["counted_linear_flops_per_token"] == size["lengen"]["counted_linear_flops_per_token"]
    # the first step of a compiled model includes its compilation (seconds), an eager one's does not
    assert size["lengen+compile"]["first_step_wall_s"] > 10 * size["lengen"]["first_step_wall_s"]
    assert positive(size["ratio_compiled_lengen_over_compiled_transformers"])
    assert positive(size["speedup_bound_over_transformers"])


def test_trainer_compile_measures_both_modes():
    result = run_quick("trainer_compile.py")
    (model,) = result["models"]
    for mode in ("eager", "compiled"):
        assert positive(model[mode]["tokens_per_s"]) and positive(model[mode]["cpu_s_per_step"])
    # compiling is a fixed cost of seconds that the eager run does not pay
    assert model["compiled"]["fixed_cpu_s"] > model["eager"]["fixed_cpu_s"]
    assert model["ratio_compiled_over_eager"] == pytest.approx(
        model["compiled"]["tokens_per_s"] / model["eager"]["tokens_per_s"], rel=0.01)


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
    # one cell and the idealized learner, each at two k and three lengths (24, 32, and the training length 20)
    assert result["rows"] == 12


def test_attention_kernels_compute_the_same_attention():
    result = run_quick("attention_kernels.py")
    variants = {r["variant"]: r for r in result["variants"]}
    assert {"sdpa_causal", "sdpa_float_mask", "written_out"} <= set(variants)
    assert variants["sdpa_causal"]["ratio_to_sdpa_causal"] == 1.0
    for r in variants.values():
        assert positive(r["ms"]) and r["max_abs_diff"] < 1e-5  # every variant is the same causal attention
