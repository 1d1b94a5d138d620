"""Refuse, before anything is allocated, models and lengths that cannot fit in this machine's memory.

A typo such as ``d_model: 1000000000`` or an evaluation length of 10**9 otherwise starts allocating
and ends in a swap storm or the kernel's OOM killer. The estimates are deliberately rough (a factor
of ~2 either way) and only catch what is far beyond the machine; ``--no-size-check`` skips them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from lengen.config import Cell, ExperimentConfig, eval_settings
from lengen.errors import ConfigError
from lengen.evaluate import eval_batch_size
from lengen.model import ModelConfig, Transformer

FLOAT = 4  # bytes: CPU runs are fp32
ADAM = 4  # weights, gradients and AdamW's two moments
HELD_BYTES_PER_TOKEN = 48  # a held-out sample's int64 tokens, targets, ids, answer index and dependencies


def machine_memory() -> int:
    """Bytes of RAM on this machine (psutil when installed, else sysconf)."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def parameter_count(cfg: ModelConfig, memory: int | None = None) -> int:
    """Exact when the model can be built on the meta device (no memory used); the transformer blocks'
    and embeddings' count alone when that already exceeds ``memory`` (building 10**9 layers, even on
    the meta device, would take hours)."""
    d, layers = cfg.d_model, cfg.n_layers
    rough = layers * (4 * d * d + 2 * d * cfg.ff_width) + 2 * max(cfg.vocab_size, 1) * d
    if memory is not None and FLOAT * rough > memory:
        return rough
    try:
        with torch.device("meta"):
            model = Transformer(cfg)
        return sum(p.numel() for p in model.parameters())
    except (RuntimeError, OverflowError, ValueError, MemoryError):
        return rough


@dataclass
class Estimate:
    parameters: int
    train_bytes: int
    eval_bytes: int
    eval_length: int

    @property
    def peak(self) -> int:
        return max(self.train_bytes, self.eval_bytes)


def estimate(cell: Cell, memory: int | None = None, idealized: int | None = None) -> Estimate:
    """Peak bytes of training and of evaluation; ``idealized``: the experiment's idealized learner's
    training samples (lengen.idealized samples them, and each evaluation length, in one batch)."""
    cfg, tr = cell.model, cell.train
    task = cell.build_task()
    params = parameter_count(cfg, memory)
    heads, d, vocab, layers = cfg.n_heads, cfg.d_model, max(cfg.vocab_size, 1), cfg.n_layers

    def tokens(length: int) -> int:
        return max(length, task.max_position_id(length, "plain"))

    t_train = tokens(tr.max_len)
    # per token and layer: the residual stream, qkv, the MLP's hidden layer and the norms, kept for
    # backward; attention scores and probabilities per head; the logits of every position
    per_sample = t_train * layers * (8 * d + 2 * cfg.ff_width) + 2 * layers * heads * t_train ** 2 + 3 * t_train * vocab
    # the protocol's held-out samples stay in memory for the whole run (lengen.monitor): stop samples
    # at max_len and, with curves, curve samples at each multiple of it, per evaluation setting
    curves = list(tr.curve_multiples) if tr.curve_every > 0 else []
    held = len(eval_settings(cell)) * (tr.stop_samples * t_train
                                       + sum(tr.curve_samples * tokens(m * tr.max_len) for m in curves))
    train_bytes = FLOAT * (ADAM * params + tr.batch_size * per_sample) + HELD_BYTES_PER_TOKEN * held
    longest = max([*cell.eval.lengths, *(m * tr.max_len for m in curves)])
    t_eval = max(longest, cell.build_eval_task().max_position_id(longest, "plain"))
    batch = eval_batch_size(t_eval, heads, cell.eval.samples, vocab)
    eval_bytes = FLOAT * (params + batch * (heads * t_eval ** 2 + t_eval * (4 * d + cfg.ff_width + vocab)))
    if idealized:
        train_bytes = max(train_bytes, HELD_BYTES_PER_TOKEN * idealized * t_train)
        eval_bytes = max(eval_bytes, HELD_BYTES_PER_TOKEN * cell.eval.samples * t_eval)
    return Estimate(params, train_bytes, eval_bytes, longest)


def _gib(n: int) -> str:
    return f"{n / 2 ** 30:,.1f} GiB"


def check_sizes(cfg: ExperimentConfig, memory: int | None = None) -> None:
    """Raise one ConfigError for the first cell whose training or evaluation needs more than ``memory``
    (default: this machine's RAM)."""
    memory = machine_memory() if memory is None else memory
    for cell in cfg.cells():
        est = estimate(cell, memory, cfg.idealized)
        if est.peak <= memory:
            continue
        what = (f"training (batch {cell.train.batch_size} at length {cell.train.max_len}, with the held-out "
                f"samples)"
                if est.train_bytes >= est.eval_bytes else f"evaluation at length {est.eval_length}")
        raise ConfigError(f"scheme {cell.scheme.label} {cell.grid_values or ''}: a model of {est.parameters:,} "
                          f"parameters needs ~{_gib(est.peak)} for {what}, more than this machine's "
                          f"{_gib(memory)} of memory; make it smaller, or pass --no-size-check to try anyway")
