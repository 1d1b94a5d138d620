"""Experiment files: read with yaml.safe_load, every key and value checked (one ConfigError line per
problem), built into the schema of ``lengen.config`` and cross-checked by ``lengen.config_rules``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lengen.config import EvalConfig, ExperimentConfig, LanguageConfig, SchemeSpec, TaskSpec, TrainConfig
from lengen.config_quick import apply_quick, merge_overrides
from lengen.config_rules import validate_experiment
from lengen.errors import ConfigError
from lengen.model import ModelConfig
from lengen.tasks import TASKS
from lengen.validate import build, check_keys, check_mapping, check_name, check_value, short_repr
from lengen.yaml_input import load_yaml

TOP_KEYS = {"experiment", "description", "task", "task_args", "grid", "schemes", "seeds", "model", "train",
            "eval", "workers", "tasks", "language", "quick", "idealized"}


MODEL_ONLY_IN_SCHEMES = {"position": "set position schemes under 'schemes'",
                         "position_args": "set position schemes under 'schemes'"}
NOT_SETTABLE = ("position", "position_args", "vocab_size")  # filled in from the scheme and the task


def parse_experiment(raw: Any, source: str = "experiment") -> ExperimentConfig:
    """Validate a parsed experiment mapping; every problem is one ConfigError line."""
    if raw is None:
        raise ConfigError(f"{source}: the experiment file is empty (it needs at least a task: key)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: an experiment file must be a mapping of keys, got {type(raw).__name__}")
    check_keys(raw, sorted(TOP_KEYS), source)
    name = raw.get("experiment", "experiment")
    check_value(f"{source}: experiment", name, str)
    check_value(f"{source}: description", raw.get("description", ""), str)
    check_value(f"{source}: task", raw.get("task", ""), str)
    check_name(name, f"{source}: experiment")
    tasks = _parse_tasks(raw.get("tasks"), source)
    if "task" not in raw and not tasks:
        raise ConfigError(f"{source}: missing key 'task' (`lengen tasks` lists the {len(TASKS.names())} tasks)")
    if "task" in raw and tasks:
        raise ConfigError(f"{source}: give either 'task' or 'tasks', not both")
    if not tasks:
        TASKS.get_class(raw["task"])
    task_args = raw.get("task_args") or {}
    for key in ("grid", "schemes"):  # an explicitly empty grid is a mistake, not a request for defaults
        if key in raw and raw[key] is not None and not raw[key]:
            raise ConfigError(f"{source}: {key} is empty (list what to vary, e.g. "
                              f"{'grid: {k: [1, 2]}' if key == 'grid' else 'schemes: [nope, rope]'}, or leave the key out)")
    grid = raw.get("grid") or {}
    check_value(f"{source}: task_args", task_args, dict[str, Any])
    check_value(f"{source}: grid", grid, dict[str, Any])
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: grid.{key}: expected a non-empty list, got {short_repr(values)}")
    schemes = []
    check_value(f"{source}: schemes", raw.get("schemes") or [], list[Any])
    for i, s in enumerate(raw.get("schemes") or ["nope"]):
        where = f"{source}: schemes[{i}]"
        if isinstance(s, str):
            schemes.append(SchemeSpec(s))
        elif isinstance(s, dict):
            schemes.append(build(SchemeSpec, s, where))
        else:
            raise ConfigError(f"{where}: expected a scheme name or a mapping, got {short_repr(s)}")
        check_mapping(ModelConfig, schemes[-1].model, f"{where}.model", NOT_SETTABLE, MODEL_ONLY_IN_SCHEMES)
        check_mapping(TrainConfig, schemes[-1].train, f"{where}.train")
    labels = [s.label for s in schemes]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{source}: scheme labels must be unique, got {labels}")
    seeds = _check_seeds(raw.get("seeds", [0]), f"{source}: seeds")
    for i, scheme in enumerate(schemes):
        if scheme.seeds is not None:
            _check_seeds(scheme.seeds, f"{source}: schemes[{i}].seeds")
    model = check_mapping(ModelConfig, raw.get("model"), f"{source}: model", NOT_SETTABLE, MODEL_ONLY_IN_SCHEMES)
    workers = raw.get("workers")
    check_value(f"{source}: workers", workers, int | None)
    if workers is not None and workers < 1:
        raise ConfigError(f"{source}: workers: must be >= 1, got {workers}")
    idealized = raw.get("idealized")
    check_value(f"{source}: idealized", idealized, int | None)
    if idealized is not None and idealized < 1:
        raise ConfigError(f"{source}: idealized: must be a positive number of training samples, got {idealized}")
    cfg = ExperimentConfig(
        idealized=idealized,
        experiment=name,
        description=raw.get("description", ""),
        task=raw["task"] if not tasks else tasks[0].task,
        task_args=task_args,
        tasks=tasks,
        grid=grid,
        schemes=schemes,
        seeds=seeds,
        model=model,
        train=build(TrainConfig, raw.get("train"), f"{source}: train"),
        eval=build(EvalConfig, raw.get("eval"), f"{source}: eval"),
        workers=workers,
    )
    if raw.get("language") is not None:
        cfg.language = build(LanguageConfig, raw["language"], f"{source}: language")
    validate_experiment(cfg)
    return cfg


def _check_seeds(seeds: Any, where: str) -> list[int]:
    check_value(where, seeds, list[int])
    if not seeds:
        raise ConfigError(f"{where} is empty")
    if any(seed < 0 for seed in seeds):
        raise ConfigError(f"{where}: every seed must be >= 0, got {short_repr(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: a seed is listed twice, got {short_repr(seeds)}")
    return list(seeds)


def _parse_tasks(raw: Any, source: str) -> list[TaskSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: tasks: expected a non-empty list of task names or mappings, got {short_repr(raw)}")
    out = []
    for i, entry in enumerate(raw):
        where = f"{source}: tasks[{i}]"
        if isinstance(entry, str):
            entry = {"task": entry}
        spec = build(TaskSpec, entry, where)
        TASKS.get_class(spec.task)
        check_mapping(ModelConfig, spec.model, f"{where}.model", NOT_SETTABLE, MODEL_ONLY_IN_SCHEMES)
        check_mapping(TrainConfig, spec.train, f"{where}.train")
        check_mapping(EvalConfig, spec.eval, f"{where}.eval")
        out.append(spec)
    return out


def load_experiment(path: str | Path, quick: bool = False) -> ExperimentConfig:
    """Read and validate an experiment file; ``quick`` applies its ``quick:`` overrides. A file with
    ``extends: OTHER.yaml`` (a path relative to it) is OTHER with this file's keys merged in: mappings
    merge key by key (``quick:`` included), anything else, lists of schemes included, is replaced."""
    raw = _read_experiment(Path(path), ())
    if quick:
        raw = apply_quick(raw, str(path))
    return parse_experiment(raw, str(path))


def _read_experiment(path: Path, extended_by: tuple[Path, ...]) -> Any:
    """The raw mapping of ``path`` with its ``extends:`` chain resolved; ``extended_by`` lists the files
    that extend it, for the error messages and to refuse a cycle."""
    by = f" (extended by {extended_by[-1]})" if extended_by else ""
    if path.is_dir():
        raise ConfigError(f"experiment file {path} is a folder; give a YAML file{by}")
    if not path.is_file():
        raise ConfigError(f"experiment file not found: {path}{by}")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path} could not be read: {e.strerror or type(e).__name__}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except ConfigError as e:  # an alias bomb or a recursive alias
        raise ConfigError(f"{path}: {e}") from None
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    parent = raw.pop("extends")
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"{path}: extends must be the path of another experiment file, got {parent!r}")
    parent_path = path.parent / parent
    chain = (*extended_by, path)
    if any(parent_path.resolve() == p.resolve() for p in chain):
        names = " -> ".join(str(p) for p in (*chain, parent_path))
        raise ConfigError(f"{path}: extends makes a cycle: {names}")
    base = _read_experiment(parent_path, chain)
    if not isinstance(base, dict):
        raise ConfigError(f"{parent_path}: an extended experiment file must be a mapping of settings")
    return merge_overrides(base, raw)


def default_experiment_path() -> Path:
    return Path(__file__).parent / "experiments" / "default.yaml"
