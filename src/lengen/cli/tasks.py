"""`lengen tasks`: list registered tasks and their parameters."""

from __future__ import annotations

import argparse

from lengen.registry import Registry


def print_registry(registry: Registry, title: str) -> None:
    print(title)
    for name in registry.names():
        print(f"\n  {name}: {registry.describe(name)}")
        for p in registry.params(name):
            print(f"      {p.name} ({p.type}, default {p.default!r}): {p.help}")


def _run(args: argparse.Namespace) -> int:
    import lengen.tasks as tasks

    print_registry(tasks.TASKS, "Tasks (use as `task: NAME` with `task_args:` in an experiment file):")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list tasks and their parameters")
    p.set_defaults(func=_run)
