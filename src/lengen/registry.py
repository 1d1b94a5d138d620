"""Name registries: ``FunctionRegistry`` (name -> function: metrics, output-head builders) and
``Registry`` (name -> class, with parameter validation: tasks, position schemes, backends).

Both refuse a name registered twice, word an unknown name the project's one way
(``lengen.validate.unknown``) and load their plugins' entry-point group before the first lookup or
listing. A class's parameters are dataclass fields, so `lengen tasks` / `lengen schemes` can list them
and an unknown or ill-typed parameter is caught before any work starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from lengen import plugins
from lengen.errors import ConfigError
from lengen.validate import check_keys, check_value, clip, field_types, type_hints, unknown

T = TypeVar("T")
F = TypeVar("F")
V = TypeVar("V")


@dataclasses.dataclass
class ParamInfo:
    name: str
    type: str
    default: Any
    help: str


def param(default: Any, help: str) -> Any:
    """A task or scheme parameter with a help text that `lengen tasks` / `lengen schemes` print."""
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: default, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


class _NameTable(Generic[V]):
    """What both registries share: the name -> value table, its plugin group (loaded before the first
    lookup or listing; None: no plugins), the duplicate-name check, listing and lookup."""

    def __init__(self, kind: str, group: str | None) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, V] = {}

    def _load_plugins(self) -> None:
        if self.group is not None:
            plugins.load_group(self.group)

    def _duplicate(self, name: str) -> Exception:
        return ConfigError(f"{self.kind} {name!r} is registered twice")

    def _add(self, name: str, value: V) -> V:
        if name in self._items:
            raise self._duplicate(name)
        self._items[name] = value
        return value

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests that register a throwaway one clean up with it)."""
        self._items.pop(name, None)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def _lookup(self, name: str, listing: str | None = None) -> V:
        self._load_plugins()
        if not isinstance(name, str) or name not in self._items:
            raise unknown_name(self.kind, name, self.names(), listing)
        return self._items[name]


class FunctionRegistry(_NameTable[F]):
    """Registered functions by name (``functions``: the plain dict, read without loading plugins).
    With a ``group``, its plugins' entry points are loaded before the first lookup or listing."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        super().__init__(kind, group)
        self.functions: dict[str, F] = self._items

    def register(self, name: str) -> Callable[[F], F]:
        """A decorator registering a function under ``name`` (a ConfigError if the name is taken)."""
        return lambda fn: self._add(name, fn)

    def get(self, name: str) -> F:
        return self._lookup(name)

    def check(self, names: Iterable[str]) -> list[str]:
        """``names`` as a list, each known (a ConfigError names the first that is not)."""
        names = list(names)
        for name in names:
            self.get(name)
        return names


def unknown_name(kind: str, name: Any, names: list[str], listing: str | None = None) -> ConfigError:
    """The error of a lookup of an unknown ``name`` among the sorted ``names``. With ``listing`` (the
    command listing them), more than a dozen names are not spelled out: the one-line error would be
    unreadable."""
    known = ", ".join(names) if listing is None or len(names) <= 12 else f"{listing} lists all {len(names)}"
    return ConfigError(unknown(kind, name, names, known, suggest=isinstance(name, str)))


class Registry(_NameTable[type[T]]):
    """Registered classes by name. Before its first lookup or listing, a registry loads the plugins of
    its entry-point group (``lengen.plugins``; default ``lengen.<last word of kind>s``: a "position
    scheme" registry reads ``lengen.schemes``, a "task" one ``lengen.tasks``, a "metric" one
    ``lengen.metrics``), so another package's classes are listed and found like lengen's own."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        super().__init__(kind, group or f"lengen.{kind.split()[-1]}s")

    def _duplicate(self, name: str) -> Exception:
        return ValueError(f"{self.kind} {name!r} registered twice")

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorate(cls: type[T]) -> type[T]:
            if name not in self._items:
                cls.name = name  # type: ignore[attr-defined]
            return self._add(name, cls)

        return decorate

    def get_class(self, name: str) -> type[T]:
        return self._lookup(name, listing=f"`lengen {self.kind}s`")

    def param_class(self, name: str) -> type:
        """The dataclass holding the parameters: the class itself, or its nested ``Params``."""
        cls = self.get_class(name)
        return getattr(cls, "Params", cls)

    def params(self, name: str) -> list[ParamInfo]:
        cls = self.param_class(name)
        if not dataclasses.is_dataclass(cls):
            return []
        hints = type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            if not f.init or f.name.startswith("_"):
                continue
            default = f.default
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            out.append(ParamInfo(f.name, _type_name(hints.get(f.name, Any)), default,
                                 f.metadata.get("help", "")))
        return out

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Validate ``kwargs`` against the parameters, then build. A class with a nested ``Params``
        dataclass is built as ``cls(*args, params=Params(**kwargs))``."""
        cls = self.param_class(name)
        where = f"{self.kind} {name}"
        if dataclasses.is_dataclass(cls):
            known = {p.name for p in self.params(name)}
            check_keys(kwargs, [f for f in field_types(cls) if f in known], where, noun="parameter",
                       list_known=True)
            types_ = field_types(cls)
            for key, value in kwargs.items():
                check_value(f"{where}: parameter {key}", value, types_[key])
        elif kwargs:
            check_keys(kwargs, [], where, noun="parameter", list_known=True)
        try:
            if cls is self.get_class(name):
                return cls(*args, **kwargs)  # type: ignore[no-any-return,unused-ignore]
            return self.get_class(name)(*args, params=cls(**kwargs))  # type: ignore[call-arg]
        except (TypeError, ValueError, RuntimeError) as e:  # e.g. torch refusing a layer of width -1
            raise ConfigError(f"{where}: {clip(str(e))}") from None

    def describe(self, name: str) -> str:
        doc = (self.get_class(name).__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")
