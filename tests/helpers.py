"""Tiny experiment configurations for tests."""

from typing import Any

from lengen.config import Cell, parse_experiment


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
