"""Schemes, tasks and metrics from other packages, found through entry points.

A package adds its own by declaring an entry point in one of the groups ``lengen.schemes``,
``lengen.tasks``, ``lengen.metrics`` or ``lengen.backends`` (``pyproject.toml``)::

    [project.entry-points."lengen.schemes"]
    my_scheme = "my_package.my_scheme:MyScheme"

Loading an entry point imports its object; the object's module registers itself with the usual
decorator (``@register_scheme("my_scheme")``, ``@register_task(...)``, ``@register_metric(...)``), so
lengen needs no list of plugins and no edit. Each group is loaded once per process, lazily: a registry
loads its group (``lengen.<kind>s``) before its first lookup or listing, so that worker processes,
``lengen schemes`` and the test suites' discovery all see the same names. docs/extending.md shows a
scheme, a task and a metric written this way.
"""

from __future__ import annotations

import importlib.metadata
import threading

from lengen.errors import ConfigError

GROUPS = ("lengen.schemes", "lengen.tasks", "lengen.metrics", "lengen.backends")

_loaded: set[str] = set()
_lock = threading.RLock()  # one loader per group even when threads look names up at once


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The installed entry points of ``group``, by name (a stable loading order)."""
    return sorted(importlib.metadata.entry_points(group=group), key=lambda ep: (ep.name, ep.value))


def load_group(group: str) -> list[str]:
    """Import every entry point of ``group`` once per process; returns the names loaded by this call.

    A plugin that fails to import (or to register) is one ConfigError line naming its entry point;
    the group counts as loaded all the same, so the error is raised once, not at every lookup.
    """
    with _lock:
        if group in _loaded:
            return []
        _loaded.add(group)  # before loading: a plugin that looks names up while importing must not recurse
        names = []
        for ep in entry_points(group):
            try:
                ep.load()
            except Exception as e:  # any failure of someone else's code: name the entry point, one line
                dist = f" (package {ep.dist.name})" if ep.dist is not None else ""
                raise ConfigError(f"plugin {ep.name} = {ep.value} in entry point group {group}{dist} failed to "
                                  f"load: {_first_line(e)}") from None
            names.append(ep.name)
        return names


def load_all() -> list[str]:
    """Load every group (``lengen schemes`` / ``lengen tasks`` and tests call the groups they need)."""
    return [name for group in GROUPS for name in load_group(group)]


def forget(group: str | None = None) -> None:
    """Let ``group`` (every group: None) load again; for tests that install a plugin mid-process."""
    with _lock:
        if group is None:
            _loaded.clear()
        else:
            _loaded.discard(group)
