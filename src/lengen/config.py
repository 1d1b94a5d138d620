"""The experiment schema: the dataclasses an experiment file becomes, and their expansion into cells.

Reading a file is ``lengen.config_parse`` (``load_experiment``, ``parse_experiment``); ``--quick`` is
``lengen.config_quick``; the checks across sections (tasks, lengths, schemes, the language analysis)
are ``lengen.config_rules``. This module imports none of them, so every layer can use the schema.

An experiment is a grid: schemes x seeds x (the cartesian product of the task parameters in
``grid``). Each cell trains one model and evaluates it on every evaluation length.

    experiment: sparsity
    task: sparse_parity
    task_args: {noise_vocab: 8}
    grid: {k: [1, 2, 4]}          # task parameters to vary
    schemes: [nope, rope, {label: learned_offset, position: learned, position_args: {random_offset: true}}]
    seeds: [0, 1, 2]
    model: {d_model: 64, n_layers: 2, n_heads: 4}
    train: {steps: 3000, min_len: 5, max_len: 20, target_accuracy: 0.99}
    eval: {lengths: [10, 20, 40, 80, 160], samples: 512}
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from lengen.errors import ConfigError
from lengen.model import ModelConfig
from lengen.tasks import TASKS, Task, make_task

IDS = ("plain", "coupled")
MAX_THREADS = 4096  # torch refuses absurd thread counts only when a cell starts
EVAL_MODES = ("auto", "teacher", "generate")
STOP_ON = ("target", "mixture")
SELECT = ("best", "last")
# Version of the training protocol. 1: stop and select on held-out target samples, learned flags, L*,
# curves (lengen.monitor). Cells saved without one (0) stopped on the training mixture and kept the
# last weights; they keep their keys and are rebuilt with those settings.
PROTOCOL = 1
LEGACY_TRAIN = {"stop_on": "mixture", "select": "last", "curve_every": 0}
NEW_TRAIN_KEYS = ("stop_on", "select", "stop_samples", "curve_every", "curve_multiples", "curve_samples")
NEW_EVAL_KEYS = ("grid", "learned_bar", "l_star_level")


@dataclass
class TrainConfig:
    steps: int = 2000  # step budget (the cosine schedule spans it even when training stops early)
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    grad_clip: float = 1.0
    min_len: int = 5
    max_len: int = 20
    # stop once answer accuracy over the last `check_every` training steps reaches this (None: never)
    target_accuracy: float | None = 0.99
    check_every: int = 50
    checkpoint_every: int = 500
    ids: str = "plain"  # which ids the model consumes: the plain 0..T-1 or the task's coupled ids
    position_loss_weight: float = 1.0  # PPC: weight of the next-position-id loss (models with a position head)
    threads: int | None = None  # torch threads in this process (None: leave torch's default)
    device: str = "auto"  # auto: cuda when available, else cpu
    # torch.compile the loss forward: 1.18-1.20x per step on this 2-core CPU, for 5-9 s of compiling
    # that most default cells (stopped early after 200-1200 steps) do not earn back, so off by default
    # (benchmarks/trainer_compile.py, docs/performance.md); worth it for wider models and long runs
    compile: bool = False
    # PoSE (lengen.positions.pose): during training only, cut each window into pose_chunks pieces whose
    # ids are shifted by random skips so that ids up to pose_target_length - 1 are seen (None: off)
    pose_target_length: int | None = None
    pose_chunks: int = 2
    # lengen.holes: up to this many tokens deleted from each window's beginning, ids kept (text; 0: off)
    holes: int = 0
    # the protocol (lengen.monitor): stop on held-out samples of the target distribution (each
    # eval.grid setting at max_len), not on the training mixture; keep the best-scoring weights
    stop_on: str = "target"  # target | mixture (the training batches: how cells of protocol 0 stopped)
    select: str = "best"  # best: the weights with the best held-out target score; last: the final ones
    stop_samples: int = 256  # held-out samples per target setting for stopping and selection
    curve_every: int = 500  # steps between held-out scores at curve_multiples x max_len (0: no curves)
    curve_multiples: list[int] = field(default_factory=lambda: [2, 4, 8])
    curve_samples: int = 128

    def validate(self) -> None:
        for name in ("steps", "batch_size", "check_every", "checkpoint_every", "min_len", "max_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train: {name} must be a positive integer, got {getattr(self, name)}")
        if self.min_len > self.max_len:
            raise ConfigError(f"train: min_len ({self.min_len}) is larger than max_len ({self.max_len})")
        if self.lr <= 0:
            raise ConfigError(f"train: lr must be positive, got {self.lr}")
        if self.warmup < 0:
            raise ConfigError(f"train: warmup must be >= 0, got {self.warmup}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ConfigError(f"train: target_accuracy must be in (0, 1], got {self.target_accuracy}")
        if self.position_loss_weight < 0:
            raise ConfigError(f"train: position_loss_weight must be >= 0, got {self.position_loss_weight}")
        if self.ids not in IDS:
            raise ConfigError(f"train: ids must be one of {', '.join(IDS)}, got {self.ids!r}")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError(f"train: threads must be between 1 and {MAX_THREADS}, got {self.threads}")
        if self.weight_decay < 0 or self.grad_clip < 0:  # grad_clip 0: no clipping
            raise ConfigError(f"train: weight_decay and grad_clip must be >= 0, got {self.weight_decay}, "
                              f"{self.grad_clip}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"train: device must be auto, cpu or cuda, got {self.device!r}")
        if self.pose_chunks < 1:
            raise ConfigError(f"train: pose_chunks must be >= 1, got {self.pose_chunks}")
        if self.stop_on not in STOP_ON:
            raise ConfigError(f"train: stop_on must be one of {', '.join(STOP_ON)}, got {self.stop_on!r}")
        if self.select not in SELECT:
            raise ConfigError(f"train: select must be one of {', '.join(SELECT)}, got {self.select!r}")
        if self.stop_samples < 1 or self.curve_samples < 1 or self.curve_every < 0:
            raise ConfigError("train: stop_samples and curve_samples must be >= 1 and curve_every >= 0")
        if any(not isinstance(m, int) or m < 1 for m in self.curve_multiples):
            raise ConfigError(f"train: curve_multiples must be positive integers, got {self.curve_multiples}")
        if self.holes < 0:
            raise ConfigError(f"train: holes must be >= 0, got {self.holes}")
        if self.pose_target_length is not None and self.pose_target_length < self.max_len:
            raise ConfigError(f"train: pose_target_length ({self.pose_target_length}) must be at least "
                              f"max_len ({self.max_len})")


def length_range(spec: dict[str, Any]) -> list[int]:
    """``{from: 24, to: 320, step: 8}`` -> [24, 32, ..., 320]: a fine grid, so that L* is not quantised
    to powers of two."""
    keys = {"from", "to", "step"}
    if set(spec) != keys or not all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in keys):
        raise ConfigError(f"eval: lengths must be a list of integers or a mapping {{from, to, step}} of integers, "
                          f"got {str(spec)[:80]}")
    if spec["step"] < 1 or spec["from"] < 1 or spec["to"] < spec["from"]:
        raise ConfigError(f"eval: lengths {{from, to, step}} needs 1 <= from <= to and step >= 1, got {spec}")
    if (spec["to"] - spec["from"]) // spec["step"] >= 10_000:
        raise ConfigError(f"eval: lengths {spec} has more than 10000 lengths")
    return list(range(spec["from"], spec["to"] + 1, spec["step"]))


@dataclass
class EvalConfig:
    # a list, or a range {from, to, step} that __post_init__ expands ("accepts": what a file may give)
    lengths: list[int] = field(default_factory=lambda: [10, 20, 40, 80, 160],
                               metadata={"accepts": list[int] | dict[str, int]})
    samples: int = 512
    seed: int = 12345  # evaluation data is drawn from its own stream, never from training's
    # task parameters changed for evaluation, e.g. {k_min: null} to score a model trained on a range
    # of k at its largest k only
    task_args: dict[str, Any] = field(default_factory=dict)
    # teacher: teacher-forced scoring; generate: greedy decoding with a KV cache; auto: generate for tasks
    # with multi-token answers, teacher otherwise
    mode: str = "auto"
    restrict_ids: bool = True  # PPC decoding: only ids that occur in the prompt may be predicted
    # task settings each model is scored at, e.g. {k: [1, 2, 4, 8]} for one model trained on a range of
    # k: every setting gets its own rows, its own learned flag and L*, and is a target of the stopping rule
    grid: dict[str, list[Any]] = field(default_factory=dict)
    learned_bar: float = 0.95  # "learned": exact match at the longest training length reaches this
    # L*: the longest evaluated length up to which every length scores >= chance + l_star_level (1 - chance)
    l_star_level: float = 0.8

    def __post_init__(self) -> None:
        if isinstance(self.lengths, dict):
            self.lengths = length_range(self.lengths)

    def validate(self) -> None:
        if self.mode not in EVAL_MODES:
            raise ConfigError(f"eval: mode must be one of {', '.join(EVAL_MODES)}, got {self.mode!r}")
        if not self.lengths:
            raise ConfigError("eval: lengths is empty")
        if any(n < 1 for n in self.lengths):
            raise ConfigError(f"eval: every length must be >= 1, got {self.lengths}")
        if self.samples < 1:
            raise ConfigError(f"eval: samples must be >= 1, got {self.samples}")
        if self.seed < 0:
            raise ConfigError(f"eval: seed must be >= 0, got {self.seed}")
        if not 0 < self.learned_bar <= 1 or not 0 < self.l_star_level <= 1:
            raise ConfigError(f"eval: learned_bar and l_star_level must be in (0, 1], got {self.learned_bar}, "
                              f"{self.l_star_level}")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"eval: grid.{key} must be a non-empty list, got {values!r}")


@dataclass
class SchemeSpec:
    position: str
    position_args: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    # per-scheme overrides of the experiment's model and train sections (e.g. PPC: a position head,
    # coupled ids): {position_head: true} / {ids: coupled}
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    # this scheme's seeds instead of the experiment's (e.g. a reference model that one seed suffices for);
    # which seeds run is scheduling, not the model, so it is not part of a cell's key
    seeds: list[int] | None = None

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.position


@dataclass
class Cell:
    """One trained model: a task setting, a scheme, a seed."""

    experiment: str
    task: str
    task_args: dict[str, Any]
    grid_values: dict[str, Any]
    scheme: SchemeSpec
    seed: int
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig
    # the task's version when the cell was made (``Task.version``); cells saved without one are 0
    task_version: int | None = None
    protocol: int = PROTOCOL  # the training protocol's version (see PROTOCOL)

    def __post_init__(self) -> None:
        if self.task_version is None:
            self.task_version = TASKS.get_class(self.task).version

    def canonical(self) -> dict[str, Any]:
        """The configuration without settings left at their defaults: a new option added to lengen
        (with a default) leaves the canonical form, and so the key, of existing cells unchanged."""
        d = self.to_dict()
        for section, default in (("model", ModelConfig()), ("train", TrainConfig()), ("eval", EvalConfig()),
                                 ("scheme", SchemeSpec(self.scheme.position))):
            base = dataclasses.asdict(default)
            d[section] = {k: v for k, v in d[section].items() if k not in base or base[k] != v}
        d["scheme"].pop("seeds", None)
        if not d["task_version"]:
            del d["task_version"]  # version 0 leaves the keys of cells made before versions existed
        if not d["protocol"]:  # protocol 0: the keys of cells made before the protocol existed
            del d["protocol"]
            for key in NEW_TRAIN_KEYS:
                d["train"].pop(key, None)
            for key in NEW_EVAL_KEYS:
                d["eval"].pop(key, None)
        return d

    @property
    def key(self) -> str:
        """A readable, unique, filesystem-safe folder name."""
        parts = [self.scheme.label] + [f"{k}{v}" for k, v in self.grid_values.items()] + [f"seed{self.seed}"]
        digest = hashlib.sha1(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:8]
        safe = "_".join(parts).replace("/", "-").replace(" ", "")
        return f"{safe}_{digest}"

    def _legacy_args(self) -> dict[str, Any]:
        return TASKS.get_class(self.task).legacy_args(self.task_version or 0)

    def build_task(self) -> Task:
        return make_task(self.task, **{**self._legacy_args(), **self.task_args})

    def build_eval_task(self, setting: dict[str, Any] | None = None) -> Task:
        """The task the model is scored on: ``eval.task_args`` and one ``eval.grid`` setting applied."""
        return make_task(self.task, **{**self._legacy_args(), **self.task_args, **self.eval.task_args,
                                       **(setting or {})})

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "task": self.task,
            "task_args": self.task_args,
            "grid_values": self.grid_values,
            "scheme": dataclasses.asdict(self.scheme),
            "seed": self.seed,
            "model": self.model.to_dict(),
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
            "task_version": self.task_version,
            "protocol": self.protocol,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Cell:
        protocol = d.get("protocol", 0)
        legacy = LEGACY_TRAIN if protocol == 0 else {}
        return Cell(
            experiment=d["experiment"],
            task=d["task"],
            task_args=d["task_args"],
            grid_values=d["grid_values"],
            scheme=SchemeSpec(**d["scheme"]),
            seed=d["seed"],
            model=ModelConfig(**d["model"]),
            train=TrainConfig(**{**legacy, **d["train"]}),
            eval=EvalConfig(**d["eval"]),
            task_version=d.get("task_version", 0),
            protocol=protocol,
        )


@dataclass
class TaskSpec:
    """One task of a multi-task experiment, with its own overrides of the model, train and eval
    sections (a scheme's own model and train overrides win over the task's)."""

    task: str
    task_args: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    skip_schemes: list[str] = field(default_factory=list)  # scheme labels not run on this task


@dataclass
class LanguageConfig:
    """The language analysis run after the cells of a text experiment (``lengen.text.analysis``)."""

    reference: str  # label of the scheme whose model (trained at the long context) measures dependence
    context: int = 512  # tokens per validation window: the longest context scored
    windows: int = 32  # validation windows, the same for every model
    near: int | None = None  # context that is not distant (None: train.max_len - 1, the most seen in training)
    few: int = 3  # bucket "few": 1..few distant tokens needed; "many": more
    replacements: int = 2  # baseline tokens tried per ablated position
    min_effect: float = 0.05  # nats: a distant token's effect below this counts as none
    share: float = 0.9  # distant k: fewest distant tokens that carry this share of the distant effect
    seed: int = 12345
    bin: int = 16  # positions per point in the loss-vs-position plot
    # issue 14 (lengen.text.recovery_analysis): tokens the reference gains >= gain_threshold nats on from the
    # distant context; their distant sparsity = fewest distant tokens recovering recover_share of that gain;
    # at most max_measured of them (a seeded draw) are measured
    gain_threshold: float = 0.5
    recover_share: float = 0.8
    max_measured: int = 400

    def near_context(self, cfg: ExperimentConfig) -> int:
        return self.near if self.near is not None else cfg.train.max_len - 1


@dataclass
class ExperimentConfig:
    experiment: str
    task: str
    task_args: dict[str, Any]
    grid: dict[str, list[Any]]
    schemes: list[SchemeSpec]
    seeds: list[int]
    model: dict[str, Any]
    train: TrainConfig
    eval: EvalConfig
    description: str = ""
    workers: int | None = None  # parallel worker processes (None: one per core)
    tasks: list[TaskSpec] = field(default_factory=list)  # several tasks in one experiment (then ``task`` is unused)
    language: LanguageConfig | None = None  # the analysis after the cells (text experiments)
    # fit the idealized sparse learner (lengen.idealized) on this many training samples per task setting
    # and seed, and report it as scheme "idealized" beside the transformers (None: not at all)
    idealized: int | None = None

    def task_specs(self) -> list[TaskSpec]:
        return self.tasks or [TaskSpec(self.task, self.task_args)]

    def cells(self) -> list[Cell]:
        keys = list(self.grid)
        out = []
        for spec in self.task_specs():
            for values in itertools.product(*(self.grid[k] for k in keys)):
                grid_values = dict(zip(keys, values, strict=True))
                if self.tasks:
                    grid_values = {"task": spec.task, **grid_values}
                args = {k: v for k, v in grid_values.items() if k != "task" or not self.tasks}
                for scheme in self.schemes:
                    if scheme.label in spec.skip_schemes:
                        continue
                    for seed in self.seeds if scheme.seeds is None else scheme.seeds:
                        model = ModelConfig(**{**self.model, **spec.model, **scheme.model, "position": scheme.position,
                                               "position_args": dict(scheme.position_args)})
                        train = dataclasses.replace(self.train, **{**spec.train, **scheme.train})
                        evals = dataclasses.replace(self.eval, **spec.eval)
                        cell = Cell(self.experiment, spec.task, {**spec.task_args, **args}, grid_values,
                                    scheme, seed, model, train, evals)
                        # fixed here, so that a cell's key (a digest of its config) never changes later
                        cell.model.vocab_size = cell.build_task().vocab_size
                        out.append(cell)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "description": self.description,
            "task": self.task,
            "task_args": self.task_args,
            "grid": self.grid,
            "schemes": [dataclasses.asdict(s) for s in self.schemes],
            "seeds": self.seeds,
            "model": self.model,
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
            "workers": self.workers,
            **({"tasks": [dataclasses.asdict(t) for t in self.tasks]} if self.tasks else {}),
            **({"language": dataclasses.asdict(self.language)} if self.language else {}),
            **({"idealized": self.idealized} if self.idealized is not None else {}),
        }


def eval_settings(cell: Cell) -> list[dict[str, Any]]:
    """The evaluation task settings of a cell: the cartesian product of ``eval.grid`` ({} without one)."""
    keys = list(cell.eval.grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(cell.eval.grid[k] for k in keys))]
