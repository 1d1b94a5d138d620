"""Checks across the sections of an experiment, run before any training: every cell's task, lengths,
scheme and model shape, and the rules of the language analysis (``lengen.text.analysis``)."""

from __future__ import annotations

from lengen.config import ExperimentConfig, LanguageConfig, eval_settings
from lengen.errors import ConfigError
from lengen.positions import Dims, make_scheme


def validate_language(lang: LanguageConfig, cfg: ExperimentConfig) -> None:
    """The language analysis compares every scheme with a reference model on text windows."""
    labels = [s.label for s in cfg.schemes]
    if lang.reference not in labels:
        raise ConfigError(f"language: reference {lang.reference!r} is not a scheme label; labels: {', '.join(labels)}")
    if len(labels) < 2:
        raise ConfigError("language: needs at least one scheme besides the reference")
    spec = cfg.schemes[labels.index(lang.reference)]
    ref_len = spec.train.get("max_len", cfg.train.max_len)
    if ref_len < lang.context:
        raise ConfigError(f"language: the reference {lang.reference} trains on {ref_len} tokens but must see the "
                          f"whole context of {lang.context} (set its train: {{max_len: {lang.context}}})")
    if any(spec.task != "text" for spec in cfg.task_specs()):
        raise ConfigError("language: the analysis needs task text")
    near = lang.near_context(cfg)
    if near < 1 or lang.context < near + 2:
        raise ConfigError(f"language: context {lang.context} must exceed near context + 1 = {near + 1}")
    if lang.windows < 1 or lang.few < 1 or lang.replacements < 1 or lang.bin < 1:
        raise ConfigError("language: windows, few, replacements and bin must be >= 1")
    if lang.seed < 0:
        raise ConfigError(f"language: seed must be >= 0, got {lang.seed}")
    if not 0 < lang.share <= 1 or lang.min_effect < 0:
        raise ConfigError(f"language: share must be in (0, 1] and min_effect >= 0, got {lang.share}, {lang.min_effect}")
    if lang.gain_threshold <= 0 or not 0 < lang.recover_share <= 1 or lang.max_measured < 1:
        raise ConfigError(f"language: gain_threshold must be > 0, recover_share in (0, 1] and max_measured >= 1, "
                          f"got {lang.gain_threshold}, {lang.recover_share}, {lang.max_measured}")


def validate_experiment(cfg: ExperimentConfig) -> None:
    """Everything that can be checked before training: tasks, lengths, schemes, model shapes."""
    cfg.train.validate()
    cfg.eval.validate()
    if cfg.language is not None:
        validate_language(cfg.language, cfg)
    for cell in cfg.cells():
        cell.train.validate()
        cell.eval.validate()
        task = cell.build_task()
        if cell.train.min_len < task.min_length():
            raise ConfigError(
                f"{cell.task} {cell.grid_values or cell.task_args}: train.min_len = {cell.train.min_len} is shorter "
                f"than the task needs ({task.min_length()}; e.g. k larger than the length)"
            )
        for setting in eval_settings(cell):
            eval_task = cell.build_eval_task(setting)
            if eval_task.vocab_size != task.vocab_size:
                raise ConfigError(f"eval.task_args {cell.eval.task_args} {setting or ''} change the vocabulary "
                                  f"({task.vocab_size} -> {eval_task.vocab_size}); the model could not read it")
            short = [n for n in cell.eval.lengths if n < eval_task.min_length()]
            if short:
                raise ConfigError(f"{cell.task} {cell.grid_values} {setting or ''}: eval lengths {short} are shorter "
                                  f"than the task needs ({eval_task.min_length()})")
            if cell.train.max_len < eval_task.min_length():
                raise ConfigError(f"{cell.task} {setting}: train.max_len {cell.train.max_len} is shorter than the "
                                  f"evaluation task needs ({eval_task.min_length()})")
        if cell.train.holes and cell.train.pose_target_length is not None:
            raise ConfigError(f"scheme {cell.scheme.label}: train.holes and pose_target_length cannot be combined "
                              "(both rewrite the ids)")
        if cell.train.holes and not task.scores_every_token:
            raise ConfigError(f"scheme {cell.scheme.label}: train.holes needs a task that scores every next token "
                              f"(text), not {cell.task}")
        cell.model.vocab_size = task.vocab_size
        cell.model.validate()
        scheme = make_scheme(cell.scheme.position, Dims(cell.model.d_model, cell.model.n_heads),
                             **cell.scheme.position_args)
        if cell.model.position_head and cell.model.position_head_tied and scheme.id_table() is None:
            raise ConfigError(f"scheme {cell.scheme.label}: model.position_head_tied needs a scheme with a learned "
                              f"id table (learned), not {cell.scheme.position}")
        limit = scheme.max_position()
        longest = task.max_position_id(max(cell.eval.lengths), cell.train.ids)
        if limit is not None and longest > limit:
            raise ConfigError(f"scheme {cell.scheme.label}: eval length {max(cell.eval.lengths)} needs position ids "
                              f"up to ~{longest} but max_position is {limit}")
        if limit is not None and cell.train.holes and cell.train.max_len + cell.train.holes - 1 > limit:
            raise ConfigError(f"scheme {cell.scheme.label}: train.holes {cell.train.holes} gives ids up to "
                              f"{cell.train.max_len + cell.train.holes - 1}, beyond its max_position {limit}")
        if limit is not None and cell.train.pose_target_length is not None and cell.train.pose_target_length > limit:
            raise ConfigError(f"scheme {cell.scheme.label}: train.pose_target_length {cell.train.pose_target_length} "
                              f"is beyond its max_position {limit}")
