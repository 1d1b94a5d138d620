"""Tiny experiment configurations for tests."""

from typing import Any

from lengen.config import Cell
from lengen.config_parse import parse_experiment


def tiny_experiment(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "experiment": "tiny",
        "task": "sparse_parity",
        "task_args": {"noise_vocab": 4},
        "grid": {"k": [1]},
        "schemes": ["nope"],
        "seeds": [0],
        "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
        "train": {"steps": 60, "batch_size": 32, "min_len": 4, "max_len": 8, "warmup": 10,
                  "target_accuracy": None, "check_every": 10, "checkpoint_every": 20, "lr": 3e-3},
        "eval": {"lengths": [8, 16], "samples": 64},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


def tiny_cell(**overrides: Any) -> Cell:
    return parse_experiment(tiny_experiment(**overrides)).cells()[0]


def run_or_die_for_seed_1(args: tuple[dict[str, Any], str, int]) -> list[dict[str, Any]]:
    """A worker body (tests/test_reliability.py) that runs seed 0's cell but dies abruptly, as the OOM
    killer would, on seed 1's: once seed 0 has finished, so the test knows which cells are done."""
    import json
    import os
    import time
    from pathlib import Path

    from lengen.backends.local import _run_job_in_worker

    cell_dict, cell_dir, _ = args
    if cell_dict["seed"] != 1:
        return _run_job_in_worker(args)
    Path(cell_dir).mkdir(parents=True, exist_ok=True)
    (Path(cell_dir) / "cell.json").write_text(json.dumps(cell_dict))  # started, as run_cell marks it
    deadline = time.monotonic() + 300
    while not list(Path(cell_dir).parent.glob("*seed0*/rows.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os._exit(9)
