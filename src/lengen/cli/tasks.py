"""`lengen tasks`: list registered tasks and their parameters; `--structure` tabulates their ground-truth
dependency structure (k, span, reach, in raw positions and coupled ids) at two lengths."""

from __future__ import annotations

import argparse
import json
import math

import lengen.tasks as tasks
from lengen.errors import ConfigError
from lengen.registry import Registry
from lengen.tasks.structure import task_structure


def print_registry(registry: Registry, title: str) -> None:
    print(title)
    for name in registry.names():
        print(f"\n  {name}: {registry.describe(name)}")
        for p in registry.params(name):
            print(f"      {p.name} ({p.type}, default {p.default!r}): {p.help}")


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else (f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}")


MAX_CELLS = 10_000_000  # --length x --samples at most (the sampled batches are held in memory)


def _structure(args: argparse.Namespace) -> int:
    if args.length < 1 or args.samples < 1:
        raise ConfigError(f"--length and --samples must be at least 1, got {args.length} and {args.samples}")
    if args.length * args.samples > MAX_CELLS:
        raise ConfigError(f"--length x --samples must be at most {MAX_CELLS:,} (memory), got "
                          f"{args.length} x {args.samples}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    names = args.task or [n for n in tasks.TASKS.names() if tasks.TASKS.get_class(n).has_dependencies]
    rows = []
    for name in names:
        if not tasks.TASKS.get_class(name).has_dependencies:
            raise ConfigError(f"task {name} has no ground-truth dependency sets")
        rows.append(task_structure(tasks.make_task(name), args.length, args.samples, args.seed))
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1))
        return 0
    print(f"Ground-truth dependency structure per output token (default parameters, {args.samples} samples;\n"
          f"k = dependency-set size, span = max - min position, id = coupled-id space; a/b = at L={args.length} / 2L):")
    head = f"{'task':28s} {'k mean':>11s} {'k p90':>9s} {'k max':>9s} {'k grows':>7s} {'span mean':>11s} " \
           f"{'reach mean':>11s} {'id span':>9s} {'id reach':>9s}"
    print(head)
    for r in rows:
        s, lg = r.short, r.long
        ids = (f"{_fmt(s.id_span.mean)}/{_fmt(lg.id_span.mean)}" if s.id_span and lg.id_span else "-",
               f"{_fmt(s.id_reach.mean)}/{_fmt(lg.id_reach.mean)}" if s.id_reach and lg.id_reach else "-")
        print(f"{r.task:28s} {_fmt(s.k.mean) + '/' + _fmt(lg.k.mean):>11s} {_fmt(s.k.p90) + '/' + _fmt(lg.k.p90):>9s} "
              f"{_fmt(s.k.max) + '/' + _fmt(lg.k.max):>9s} {'yes' if r.k_grows else 'no':>7s} "
              f"{_fmt(s.span.mean) + '/' + _fmt(lg.span.mean):>11s} {_fmt(s.reach.mean) + '/' + _fmt(lg.reach.mean):>11s} "
              f"{ids[0]:>9s} {ids[1]:>9s}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.structure:
        return _structure(args)
    print_registry(tasks.TASKS, "Tasks (use as `task: NAME` with `task_args:` in an experiment file):")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list tasks and their parameters (--structure: their dependency structure)")
    p.add_argument("--structure", action="store_true",
                   help="tabulate each task's ground-truth dependency structure at --length and twice it")
    p.add_argument("--task", action="append", help="only this task (repeatable; default: every task with "
                                                    "ground-truth dependency sets)")
    p.add_argument("--length", type=int, default=16, help="the shorter of the two lengths compared (default 16)")
    p.add_argument("--samples", type=int, default=256, help="samples per length (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the structure as JSON")
    p.set_defaults(func=_run)
