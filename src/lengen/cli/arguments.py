"""Flag values that several subcommands read the same way, checked once here."""

from __future__ import annotations

from typing import Any

import yaml

from lengen.config import MAX_THREADS
from lengen.errors import ConfigError


def parse_assignments(items: list[str] | None, what: str) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML scalars (3 -> int, none -> None, true -> bool)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} expects key=value, got {item!r}")
        try:
            out[key] = yaml.safe_load(value) if value.lower() not in ("none", "null") else None
        except yaml.YAMLError:  # e.g. "k=[1": one line naming the flag, not a scanner traceback
            raise ConfigError(f"{what} {item!r}: the value is not a YAML scalar or list") from None
    return out


def check_threads(threads: int | None, lowest: int, meaning_of_lowest: str = "") -> None:
    """``--threads`` within ``lowest..MAX_THREADS`` (None: not given); torch segfaults on absurd counts."""
    if threads is not None and not lowest <= threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be between {lowest}{meaning_of_lowest} and {MAX_THREADS}, got {threads}")
