"""``lengen run --quick``: an experiment file's ``quick:`` overrides, merged into the raw mapping
before it is parsed."""

from __future__ import annotations

from typing import Any

from lengen.errors import ConfigError


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def apply_quick(raw: Any, source: str) -> Any:
    """The experiment with its ``quick:`` overrides applied (``lengen run --quick``): a smaller version of
    the same experiment, named ``<experiment>-quick`` so that its outputs never mix with the full run's."""
    if not isinstance(raw, dict):
        return raw
    quick = raw.get("quick")
    if quick is None:
        raise ConfigError(f"{source}: --quick needs a 'quick:' section of overrides in the experiment file")
    if not isinstance(quick, dict):
        raise ConfigError(f"{source}: quick must be a mapping of overrides, got {quick!r}")
    if "quick" in quick:
        raise ConfigError(f"{source}: quick overrides cannot contain 'quick'")
    merged = merge_overrides({k: v for k, v in raw.items() if k != "quick"}, quick)
    if "experiment" not in quick:
        merged["experiment"] = f"{raw.get('experiment', 'experiment')}-quick"
    return merged
