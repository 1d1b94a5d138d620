"""One checker for every configuration mapping: known keys, and values of the annotated type.

Every section of an experiment file (train, eval, model, a scheme, a task entry, language) and every
task or scheme parameter is a dataclass; its field annotations say what a value must be. This module
reads them, so a field added to a dataclass is checked the moment it exists, with messages of one
form: ``train.steps: expected an integer, got 'many'``. User values are shown through ``short_repr``,
never unbounded (a YAML alias can expand to gigabytes).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from lengen.errors import ConfigError

REPR_LIMIT = 60


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters (an exception's message can quote a huge value)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters; containers are cut before they are rendered whole."""
    if isinstance(value, list | tuple | dict | set) and len(value) > limit:
        kind = type(value).__name__
        return f"<{kind} of {len(value)} items>"
    try:
        text = repr(value)
    except RecursionError:  # a self-referencing YAML structure
        return f"<recursive {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(tp: Any) -> str:
    """A type annotation in words: ``int | None`` -> 'an integer or null'."""
    if tp is Any:
        return "any value"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(option) for option in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (list, tuple):
        args = typing.get_args(tp)
        inner = describe(args[0]) if args and args[0] is not Any else ""
        if not inner:
            return "a list"
        plural = inner.split(" ", 1)[1] + "s" if inner.startswith(("a ", "an ")) else inner
        return f"a list of {plural}"
    if origin is dict or tp is dict:
        return "a mapping"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if tp in names:
        return names[tp]
    return f"a {getattr(tp, '__name__', str(tp))}"


def matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` (as parsed from YAML) has type ``tp``. bool is not a number here, and an int
    is a float but a float is never an int (``steps: 12.5`` is refused, not truncated)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, option) for option in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, list | tuple) and (not args or all(matches(v, args[0]) for v in value))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # an annotation this checker does not understand: the dataclass's own validate decides


def check_value(path: str, value: Any, tp: Any) -> None:
    if not matches(value, tp):
        raise ConfigError(f"{path}: expected {describe(tp)}, got {short_repr(value)}")
    if isinstance(value, float) and not math.isfinite(value):  # YAML reads .inf, .nan and 1e400
        raise ConfigError(f"{path}: expected a finite number, got {short_repr(value)}")


def check_keys(raw: Mapping[Any, Any], allowed: Iterable[str], where: str,
               hints: Mapping[str, str] | None = None, noun: str = "key", list_known: bool = False) -> None:
    """Refuse the first unknown key, with the closest known one as a hint (and, with ``list_known``,
    every known one)."""
    allowed = list(allowed)
    for key in raw:
        if key in allowed:
            continue
        if hints and key in hints:
            raise ConfigError(f"{where}: unknown {noun} {short_repr(key)} ({hints[key]})")
        known = (", ".join(allowed) or "none") if list_known else None
        raise ConfigError(f"{where}: {unknown(noun, key, allowed, known)}")


def unknown(noun: str, key: Any, allowed: Iterable[str], known: str | None = None, suggest: bool = True) -> str:
    """The one wording of every unknown key or name: ``unknown parameter 'kk' (did you mean 'k'?); known:
    ...`` (``known``: what to list after "known:", None for nothing; ``suggest``: look for a close
    match). Used by ``check_keys`` and by the registries' name lookup."""
    close = difflib.get_close_matches(str(key), list(allowed), n=1) if suggest else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {noun} {short_repr(key)}{hint}" + (f"; known: {known}" if known is not None else "")


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, evaluated once per class: the string annotations of
    ``from __future__ import annotations`` cost ~1 ms a class to evaluate, and every task built
    (``make_task``: each cell, each evaluation setting) asked for them again. Read-only."""
    return typing.get_type_hints(cls)


def field_types(cls: type) -> dict[str, Any]:
    """The settable fields of a dataclass and the types a file may give them: the annotation, or a
    field's ``metadata["accepts"]`` where ``__post_init__`` converts another form (eval.lengths)."""
    hints = type_hints(cls)
    return {f.name: f.metadata.get("accepts", hints.get(f.name, Any)) for f in dataclasses.fields(cls) if f.init}


def check_mapping(cls: type, raw: Any, where: str, exclude: Iterable[str] = (),
                  hints: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check a mapping meant for ``cls(**raw)``: a mapping, known keys only, every value of its field's
    type. ``exclude`` names fields that may not be given here. Returns the mapping (None reads as {})."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {short_repr(raw)}")
    fields = {k: v for k, v in field_types(cls).items() if k not in set(exclude)}
    check_keys(raw, fields, where, hints)
    for key, value in raw.items():
        check_value(f"{where}.{key}", value, fields[key])
    return raw


def build(cls: type, raw: Any, where: str, exclude: Iterable[str] = (),
          hints: Mapping[str, str] | None = None) -> Any:
    """``cls(**raw)`` after ``check_mapping``; a missing required field is one line too."""
    raw = check_mapping(cls, raw, where, exclude, hints)
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and f.name not in raw]
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r}")
    try:
        return cls(**raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {clip(str(e))}") from None


NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")
NAME_LIMIT = 100


def check_name(name: str, where: str) -> str:
    """An experiment name becomes a folder (``runs/<name>``): it must be one plain path component, so
    that no name writes outside ``runs/`` (``../x``, ``/tmp/x``) or straight into it (``""``)."""
    if not name:
        raise ConfigError(f"{where}: the name is empty; it names the output folder runs/<name>")
    if name in (".", "..") or name.startswith("."):
        raise ConfigError(f"{where}: {short_repr(name)} would be a hidden or parent folder; start the name "
                          f"with a letter or digit")
    bad = sorted(set(name) - NAME_CHARS)
    if bad:
        raise ConfigError(f"{where}: {short_repr(name)} contains {short_repr(''.join(bad[:5]))}; use letters, "
                          f"digits and . _ + - only (the name is one folder, runs/<name>)")
    if len(name) > NAME_LIMIT:
        raise ConfigError(f"{where}: the name is {len(name)} characters long; at most {NAME_LIMIT}")
    return name
