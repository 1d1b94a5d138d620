"""`lengen schemes`: list registered position schemes and their parameters."""

from __future__ import annotations

import argparse

from lengen.cli.tasks import print_registry


def _run(args: argparse.Namespace) -> int:
    import lengen.positions as positions

    print_registry(positions.SCHEMES, "Position schemes (use as `model: {position: NAME, position_args: {...}}`):")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schemes", help="list position schemes and their parameters")
    p.set_defaults(func=_run)
