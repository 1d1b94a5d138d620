"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``).

Every script prints a human-readable report and, as its last line, one JSON object with the figures
(``tests/test_benchmarks_smoke.py`` parses it). The machine is noisy and shared, so scripts compare
things measured in the same run, interleave repetitions and report medians, never absolute targets.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

CPU = torch.device("cpu")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "load_avg_1min": round(load, 2),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device = CPU) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call, with the device drained before and after.

    On a shared machine a single-threaded process's CPU seconds exclude the time it waited for a
    core, so with one thread they measure the work itself; wall seconds include the waiting.
    """
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def seconds(measured: tuple[float, float], threads: int, device: torch.device = CPU) -> float:
    """The time a rate is computed from: CPU seconds for one CPU thread (contention-proof), else wall."""
    wall, cpu = measured
    return cpu if threads == 1 and device.type == "cpu" else wall


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def matmul_flops(threads: int, size: int = 1024, reps: int = 5, device: torch.device = CPU,
                 dtype: torch.dtype = torch.float32) -> float:
    """Best fp32 matmul FLOP/s of ``reps`` square products on ``threads`` threads (the hardware ceiling
    that MFU is measured against; best, not median, because contention only ever slows it down)."""
    torch.set_num_threads(threads)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.mm(a, b, out=out)  # warm up
    best = min(seconds(timed(lambda: torch.mm(a, b, out=out), device), threads, device) for _ in range(reps))
    return 2 * size**3 / best


def emit(results: dict[str, Any]) -> None:
    """The machine-readable last line."""
    print(json.dumps(results, sort_keys=True), flush=True)
