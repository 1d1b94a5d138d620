"""The `lengen` command line: a thin layer over the library. One module per subcommand.

Each module in ``COMMANDS`` defines ``register(subparsers)``, which adds its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from typing import NoReturn

from lengen.errors import LengenError

COMMANDS = ["run", "sweep", "train", "tasks", "schemes", "report", "zoo_report", "diagnose", "check"]


class _Parser(argparse.ArgumentParser):
    """A bad flag is one ``lengen: error:`` line (exit 2) naming the flag, not argparse's usage block.
    Subcommand parsers are of this class too (``add_subparsers`` uses the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"lengen: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lengen",
        description="Will a transformer work on inputs longer than it was trained on, and why?",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"lengen.cli.{name}").register(sub)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (kill, a scheduler's timeout) takes the same path as Ctrl-C: workers are stopped and
    # everything already written is kept
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    try:
        code = _main(argv)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    ddp = sys.modules.get("lengen.backends.ddp")  # not imported here: commands without backends skip torch
    if ddp is not None and ddp.joined_a_group() and argv is None:  # a console run, not a call from Python
        ddp.exit_process(code)
    return code


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LengenError as e:
        print(f"lengen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lengen: interrupted; finished results and checkpoints are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
