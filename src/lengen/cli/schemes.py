"""`lengen schemes`: list registered position schemes and their parameters."""

from __future__ import annotations

import argparse

import lengen.positions as positions
from lengen.cli.tasks import print_registry


def _run(args: argparse.Namespace) -> int:
    print_registry(positions.SCHEMES, "Position schemes (list them under `schemes:` in an experiment file, by name "
                   "or with parameters, e.g.\n  schemes: [nope, rope, {position: fire, position_args: {hidden: 16}}]\n"
                   "or give one to `lengen train --scheme NAME --scheme-arg KEY=VALUE`):")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schemes", help="list position schemes and their parameters")
    p.set_defaults(func=_run)
