"""Are trained numbers bit-identical across two versions of lengen? Train tiny cells, dump, compare.

Ten cells (sort, d_model 32, 2 layers, 12 steps with held-out checks, best-weight selection and curves)
cover the paths a refactor of the model, heads, ids or evaluation could change: rope, t5_bias with
PoSE, learned with coupled ids, randomized, PPC classes, tied PPC classes, the PPC pointer
(interpolated and exact) and the counts pointer, and RMSNorm + SwiGLU. Each is evaluated by greedy
generation and teacher-forced at two lengths. Run it once per tree, then compare:

    PYTHONPATH=/path/to/old/src python benchmarks/bit_identity.py old.json
    PYTHONPATH=src python benchmarks/bit_identity.py new.json
    python benchmarks/bit_identity.py --compare old.json new.json

``--model KEY=VALUE`` sets a model option on every cell (e.g. ``fused_projections=false``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
import yaml

BASE: dict[str, Any] = {
    "experiment": "bit_identity", "task": "sort", "task_args": {"boundary_id": "start"}, "seeds": [0],
    "model": {"d_model": 32, "n_layers": 2, "n_heads": 2},
    "train": {"steps": 12, "check_every": 4, "checkpoint_every": 100, "batch_size": 8, "min_len": 3, "max_len": 6,
              "warmup": 3, "stop_on": "target", "select": "best", "curve_every": 8, "target_accuracy": None,
              "lr": 3e-3},
    "eval": {"lengths": [6, 10], "samples": 16},
}
RANDOM_OFFSET = {"random_offset": True, "max_position": 64}
POINTER = {"position_head": True, "position_head_kind": "pointer"}
CELLS: dict[str, dict[str, Any]] = {
    "rope_plain": {"position": "rope"},
    "t5_pose": {"position": "t5_bias", "train": {"pose_target_length": 24}},
    "learned_coupled": {"position": "learned", "position_args": RANDOM_OFFSET, "train": {"ids": "coupled"}},
    "randomized": {"position": "randomized", "position_args": {"max_position": 64}},
    "ppc_classes": {"position": "learned", "position_args": RANDOM_OFFSET, "model": {"position_head": True},
                    "train": {"ids": "coupled"}},
    "ppc_tied": {"position": "learned", "position_args": RANDOM_OFFSET,
                 "model": {"position_head": True, "position_head_tied": True}, "train": {"ids": "coupled"}},
    "ppc_pointer": {"position": "t5_bias", "position_args": {"num_buckets": 8, "max_distance": 8},
                    "model": {**POINTER, "pointer_keys": "embed", "pointer_distance": "interpolated",
                              "pointer_max_distance": 16, "pointer_max_back": 2}, "train": {"ids": "coupled"}},
    "ppc_pointer_exact": {"position": "rope", "model": POINTER, "train": {"ids": "coupled", "position_loss_weight": 0.5}},
    "ppc_counts": {"position": "t5_bias", "model": {**POINTER, "pointer_distance": "counts", "pointer_keys": "embed"},
                   "train": {"ids": "coupled"}},
    "swiglu_rms": {"position": "rope", "model": {"norm": "rmsnorm", "mlp": "swiglu"}},
}


def run(out: str, model_args: dict[str, Any]) -> None:
    try:  # the tree under test decides where the parser lives (config_parse since issue 17)
        from lengen.config_parse import parse_experiment
    except ImportError:
        from lengen.config import parse_experiment  # type: ignore[attr-defined,no-redef]
    from lengen.evaluate import evaluate
    from lengen.train import train

    dump = {}
    for label, scheme in CELLS.items():
        scheme = {"label": label, **scheme, "model": {**scheme.get("model", {}), **model_args}}
        cell = parse_experiment({**BASE, "schemes": [scheme]}).cells()[0]
        result = train(cell, progress=False)
        rows = [evaluate(result.model, cell.build_task(), [6, 10], 16, 0, cell.train.ids, mode)
                for mode in ("generate", "teacher")]
        weights = result.model.state_dict()
        dump[label] = {"history": result.history, "eval": rows,
                       "weights": torch.cat([v.flatten().double() for v in weights.values()]).tolist()}
        print(label, "final loss", result.history[-1]["loss"], flush=True)
    Path(out).write_text(json.dumps(dump))


def compare(a_path: str, b_path: str) -> dict[str, Any]:
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    out: dict[str, Any] = {}
    for label in a:
        x, y = a[label], b.get(label)
        if y is None:
            out[label] = "missing"
            continue
        same = len(x["weights"]) == len(y["weights"])
        diff = max((abs(p - q) for p, q in zip(x["weights"], y["weights"], strict=True)), default=0.0) if same \
            else float("nan")
        out[label] = {"weights_identical": x["weights"] == y["weights"], "max_weight_diff": diff,
                      "history_identical": json.dumps(x["history"]) == json.dumps(y["history"]),
                      "eval_identical": json.dumps(x["eval"]) == json.dumps(y["eval"])}
        print(f"{label:18s} " + "  ".join(f"{k} {v}" for k, v in out[label].items()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", help="where to write this tree's dump (JSON)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two dumps")
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                        help="a model option for every cell (YAML value)")
    args = parser.parse_args()
    if args.compare:
        result = compare(*args.compare)
        print(json.dumps({"benchmark": "bit_identity", "cells": result}))
    elif args.out:
        run(args.out, {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.model)})
    else:
        parser.error("give an output file, or --compare A B")


if __name__ == "__main__":
    main()
