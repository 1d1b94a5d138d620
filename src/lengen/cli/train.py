"""`lengen train`: train and evaluate one configuration given by flags."""

from __future__ import annotations

import argparse
from pathlib import Path

from lengen.cli.arguments import parse_assignments
from lengen.cli.run import add_safety_flags, execute
from lengen.config_parse import parse_experiment
from lengen.errors import ConfigError


def parse_lengths(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--eval-lengths expects comma-separated integers, got {text!r}") from None


def _run(args: argparse.Namespace) -> int:
    raw = {
        "experiment": args.name,
        "task": args.task,
        "task_args": parse_assignments(args.task_arg, "--task-arg"),
        "schemes": [{"position": args.scheme, "position_args": parse_assignments(args.scheme_arg, "--scheme-arg")}],
        "seeds": [args.seed],
        "model": {"d_model": args.d_model, "n_layers": args.layers, "n_heads": args.heads},
        "train": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "min_len": args.min_len,
                  "max_len": args.max_len, "target_accuracy": args.target_accuracy, "ids": args.ids},
        "eval": {"lengths": parse_lengths(args.eval_lengths), "samples": args.samples},
    }
    if args.threads is not None:
        raw["train"]["threads"] = args.threads
    cfg = parse_experiment(raw, "lengen train")
    out = Path(args.out) if args.out else Path("runs") / args.name
    return execute(cfg, out, 1, args.quiet, args.force, not args.no_size_check, args.dry_run)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train and evaluate one configuration from flags")
    p.add_argument("--task", default="sparse_parity", help="task name (see `lengen tasks`)")
    p.add_argument("--task-arg", action="append", metavar="KEY=VALUE", help="task parameter, repeatable")
    p.add_argument("--scheme", default="nope", help="position scheme (see `lengen schemes`)")
    p.add_argument("--scheme-arg", action="append", metavar="KEY=VALUE", help="scheme parameter, repeatable")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=2000, help="step budget")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-len", type=int, default=5)
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--target-accuracy", type=float, default=0.99, help="stop once held-out exact match at --max-len reaches this (the target distribution, not the training batches)")
    p.add_argument("--ids", default="plain", choices=["plain", "coupled"], help="position ids the model consumes")
    p.add_argument("--eval-lengths", default="10,20,40,80,160", help="comma-separated evaluation lengths")
    p.add_argument("--samples", type=int, default=512, help="evaluation samples per length")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--name", default="train", help="experiment name (default output folder runs/<name>)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--quiet", action="store_true")
    add_safety_flags(p)
    p.set_defaults(func=_run)
