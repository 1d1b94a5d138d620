"""A property-style battery: every field of a valid experiment, mutated every way, through the CLI.

For each field of every section (read from the dataclasses, so a field added later is covered the
day it is added) and each mutation (wrong type, negative, zero, huge, missing, null), ``lengen run``
must either reach the run (the mutation is valid) or fail with exit code 2 and exactly one line on
stderr, no traceback, and the working and output folders byte-identical. Wrong types, nulls for
fields that do not take null, negative numbers and sizes far beyond the machine must be refused.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from helpers import tiny_experiment

import lengen.experiment
from lengen.cli import main
from lengen.config import EvalConfig, SchemeSpec, TrainConfig
from lengen.model import ModelConfig
from lengen.tasks import TASKS
from lengen.validate import field_types

NOT_SETTABLE = {"position", "position_args", "vocab_size"}
HUGE = 10 ** 12
# fields whose size (not just run time) grows with the value: a huge one must fail the size check
# (position_classes and the pointer's sizes matter only with a position head, which the base lacks)
SIZE_FIELDS = {"model.d_model", "model.n_layers", "model.d_ff", "train.batch_size", "train.max_len",
               "eval.lengths", "train.stop_samples", "train.curve_samples", "train.curve_multiples"}
NEGATIVE_OK: set[str] = set()  # no numeric setting takes a negative value today


class Reached(Exception):
    """Raised by the stubbed run: validation accepted the configuration."""


def _base() -> dict[str, Any]:
    raw = tiny_experiment(task_args={"noise_vocab": 4, "k": 1})
    del raw["grid"]  # a grid over k would hide every mutation of task_args.k
    raw["schemes"] = [{"position": "nope", "label": "nope"}]
    return raw


def _wrong_type(tp: Any) -> Any:
    """A value that is certainly not of type ``tp`` (None when no such value is obvious)."""
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    options = tuple(o for o in options if o is not type(None))
    if not options:
        return None
    first = typing.get_origin(options[0]) or options[0]
    return {int: "many", float: "fast", str: 123, bool: "yes", list: 40, dict: [1, 2]}.get(first)


def _takes_none(tp: Any) -> bool:
    return tp is Any or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                         and type(None) in typing.get_args(tp))


def _numeric(tp: Any) -> bool:
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return any(o in (int, float) for o in options)


def _is_list_of_ints(tp: Any) -> bool:
    return typing.get_origin(tp) is list and typing.get_args(tp) == (int,)


def _sections() -> list[tuple[str, list[str], dict[str, Any]]]:
    """(name, path into the raw config, {field: annotation}) for every section the battery mutates."""
    task_params = field_types(TASKS.param_class("sparse_parity"))
    return [
        ("train", ["train"], field_types(TrainConfig)),
        ("eval", ["eval"], field_types(EvalConfig)),
        ("model", ["model"], {k: v for k, v in field_types(ModelConfig).items() if k not in NOT_SETTABLE}),
        ("task_args", ["task_args"], {k: v for k, v in task_params.items() if not k.startswith("_")}),
        ("schemes[0]", ["schemes", 0], field_types(SchemeSpec)),
    ]


TOP = {"experiment": str, "description": str, "task": str, "task_args": dict[str, Any],
       "grid": dict[str, Any], "schemes": list[Any], "seeds": list[int], "model": dict[str, Any],
       "train": dict[str, Any], "eval": dict[str, Any], "workers": int | None, "idealized": int | None}


def mutations() -> list[tuple[str, str, dict[str, Any] | None]]:
    """(field path, mutation kind, the mutated config, or None for 'missing' of the whole key)."""
    out: list[tuple[str, str, dict[str, Any] | None]] = []

    def mutate(path: list[Any], key: str, value: Any, delete: bool = False) -> dict[str, Any]:
        raw = _base()
        node: Any = raw
        for part in path:
            node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
        if delete:
            node.pop(key, None)
        else:
            node[key] = value
        return raw

    targets = [("", [], TOP)] + _sections()
    for section, path, fields in targets:
        for key, tp in fields.items():
            name = f"{section}.{key}" if section else key
            values: list[tuple[str, Any]] = [("null", None)]
            wrong = _wrong_type(tp)
            if wrong is not None:
                values.append(("wrong type", wrong))
            if _numeric(tp):
                values += [("negative", -1), ("zero", 0), ("huge", HUGE)]
                if int in (typing.get_args(tp) or (tp,)) and float not in (typing.get_args(tp) or (tp,)):
                    values.append(("fraction", 12.5))
            if _is_list_of_ints(tp):
                values += [("negative", [-1]), ("zero", [0]), ("huge", [HUGE]), ("empty", [])]
            for kind, value in values:
                out.append((name, kind, mutate(path, key, value)))
            out.append((name, "missing", mutate(path, key, None, delete=True)))
    return out


def must_refuse(name: str, kind: str) -> bool:
    section, _, key = name.rpartition(".")
    fields = dict(_sections_by_name().get(section, TOP))
    tp = fields.get(key, Any)
    if kind in ("wrong type", "fraction"):
        return True
    if kind == "null":
        return not _takes_none(tp) and name not in ("task_args", "grid", "schemes", "model", "train", "eval")
    if kind == "negative":
        return name not in NEGATIVE_OK
    if kind == "huge":
        return name in SIZE_FIELDS
    if kind == "missing":
        return name in ("task", "schemes[0].position")
    return False


def _sections_by_name() -> dict[str, dict[str, Any]]:
    return {name: fields for name, _, fields in _sections()}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_mutated_field_is_refused_in_one_line_or_accepted(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    out = work / "out"
    out.mkdir(parents=True)
    (out / "marker.txt").write_text("an earlier run's file\n")
    monkeypatch.chdir(work)

    def reached(*args: Any, **kwargs: Any) -> None:
        raise Reached

    monkeypatch.setattr(lengen.experiment, "run_experiment", reached)
    config = tmp_path / "exp.yaml"
    before = snapshot(work)
    problems, refused, accepted = [], 0, 0
    cases = mutations()
    for name, kind, raw in cases:
        config.write_text(yaml.safe_dump(copy.deepcopy(raw), sort_keys=False))
        try:
            code = main(["run", str(config), "--out", str(out), "--quiet"])
        except Reached:
            accepted += 1
            capsys.readouterr()
            if must_refuse(name, kind):
                problems.append(f"{name} {kind}: accepted")
            continue
        except BaseException as e:  # noqa: BLE001 - anything else is a failure of the guarantee
            problems.append(f"{name} {kind}: raised {e.__class__.__name__}: {str(e)[:100]}")
            continue
        err = capsys.readouterr().err
        refused += 1
        if code != 2 or err.count("\n") != 1 or not err.startswith("lengen: error: ") or "Traceback" in err:
            problems.append(f"{name} {kind}: exit {code}, stderr {err[:200]!r}")
        if len(err) > 400:
            problems.append(f"{name} {kind}: a {len(err)}-character message")
        if snapshot(work) != before:
            problems.append(f"{name} {kind}: the folder changed")
            before = snapshot(work)
    assert not problems, "\n".join(problems)
    assert refused > 150 and accepted > 20, (refused, accepted, len(cases))


def test_the_battery_covers_every_field():
    names = {name for name, _, _ in mutations()}
    for f in dataclasses.fields(TrainConfig):
        assert f"train.{f.name}" in names
    for f in dataclasses.fields(ModelConfig):
        assert f.name in NOT_SETTABLE or f"model.{f.name}" in names
    assert {"eval.lengths", "task_args.k", "schemes[0].position_args", "seeds", "workers"} <= names
