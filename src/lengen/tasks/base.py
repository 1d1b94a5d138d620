"""The task interface: a seeded, vectorized sampler of batches that know their own ground truth.

A task is a dataclass of parameters with one method, ``sample(rng, batch, length)``. ``length`` is the
task's natural size (the number of input tokens for planted tasks, the number of items for algorithmic
ones); the sequence the model sees may be a few tokens longer (query, answer, separators).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import Registry

IGNORE = -100  # target value of positions that are not scored (torch's cross_entropy default)


@dataclass
class Batch:
    """One batch, every sample of the same length.

    ``targets[b, t]`` is the token the model must predict after reading ``tokens[b, : t + 1]``
    (so it equals ``tokens[b, t + 1]`` where scored) and ``IGNORE`` elsewhere.
    ``answer_index[b, a]`` is the index ``t`` of the a-th answer prediction; ``dependencies[b, a]``
    lists the input positions (indices into ``tokens``) that this answer depends on, padded with -1.
    """

    tokens: torch.Tensor  # [B, T] long
    targets: torch.Tensor  # [B, T] long, IGNORE where not scored
    position_ids: torch.Tensor  # [B, T] long, plain 0..T-1 unless the task says otherwise
    answer_index: torch.Tensor  # [B, A] long
    dependencies: torch.Tensor  # [B, A, D] long, -1 padded
    prompt_length: int  # tokens before the first answer token (for generation)
    coupled_ids: torch.Tensor | None = None  # [B, T] long, for position coupling

    @property
    def answer_mask(self) -> torch.Tensor:
        return self.targets != IGNORE

    def answers(self) -> torch.Tensor:
        """The answer tokens, [B, A]."""
        return torch.gather(self.targets, 1, self.answer_index)

    def to(self, device: torch.device | str) -> Batch:
        moved: dict[str, Any] = {
            f.name: (v.to(device) if isinstance(v, torch.Tensor) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }
        return Batch(**moved)


class Task:
    """Base class of all tasks. Subclasses are dataclasses registered with ``@register_task``."""

    name: ClassVar[str] = ""
    # multi-token answers are evaluated by greedy generation (eval.mode auto)
    multi_token: ClassVar[bool] = False
    # True when the answer's coupled ids follow from the input's layout alone (copy, reverse, addition);
    # False when they need the answer itself (sort, filtering): feeding them at evaluation is an oracle
    ids_from_layout: ClassVar[bool] = False
    # Bumped when a default changes what a sample looks like, so that cells trained before are not
    # resumed as if they were the same task (the version is part of a cell's key); ``legacy_args``
    # rebuilds the task those older cells were trained on.
    version: ClassVar[int] = 0
    # False for tasks without ground-truth dependency sets (text): property tests and `lengen tasks
    # --structure` skip them
    has_dependencies: ClassVar[bool] = True
    # The protocol (lengen.monitor) scores held-out exact match: stopping, selection, curves, learned, L*.
    # False for tasks where a whole answer is never exactly right (next-token prediction on text): they
    # train to their budget, keep the last weights, and their rows carry no protocol columns.
    exact_match_protocol: ClassVar[bool] = True
    # True when every next token is an answer (language modelling): training windows may then have holes
    # (lengen.holes), since no answer's meaning depends on the tokens around it
    scores_every_token: ClassVar[bool] = False
    # True when every answer token copies the input token whose coupled id it carries (seq2seq layouts:
    # input ids 1..n, separator and end n + 1): the property tests check it for every task declaring it
    outputs_copy_by_id: ClassVar[bool] = False

    @classmethod
    def legacy_args(cls, version: int) -> dict[str, Any]:
        """The parameters that give version ``version`` of this task under today's defaults."""
        return {}

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        """An upper bound on the position ids (plain or coupled) a sample of ``length`` uses, plus one."""
        return length + 8

    def chance_accuracy(self) -> float:
        """Exact match of guessing each sample's answer uniformly among its possible values: the floor
        L* is measured against. 0 for multi-token answers (guessing a whole answer is negligible)."""
        return 0.0

    def min_length(self) -> int:
        """The smallest ``length`` this task can sample."""
        return 1

    def check_length(self, length: int) -> None:
        if length < self.min_length():
            raise ConfigError(
                f"task {self.name}: length {length} is too short (needs at least {self.min_length()})"
            )

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        raise NotImplementedError

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        """Recompute every answer from the tokens at its dependency set alone, [B, A].

        The property tests compare this with ``batch.answers()``; it is the definition of what
        "depends on" means for the task.
        """
        raise NotImplementedError

    def token_names(self) -> list[str]:
        """Human-readable name of every token id (for printing samples)."""
        return [str(i) for i in range(self.vocab_size)]

    def describe(self, batch: Batch, index: int = 0) -> str:
        names = self.token_names()
        return " ".join(names[int(t)] for t in batch.tokens[index])


def random_subsets(rng: np.random.Generator, batch: int, population: int, size: int) -> np.ndarray:
    """``size`` distinct sorted integers from ``range(population)`` for each of ``batch`` rows."""
    keys = rng.random((batch, population))
    return np.sort(np.argpartition(keys, size - 1, axis=1)[:, :size] if size < population
                   else np.argsort(keys, axis=1), axis=1)


def make_batch(
    tokens: np.ndarray,
    answer_index: np.ndarray,
    dependencies: np.ndarray,
    prompt_length: int,
    coupled_ids: np.ndarray | None = None,
) -> Batch:
    """Assemble a Batch from numpy arrays; targets are derived from tokens and answer positions."""
    b, t = tokens.shape
    tok, ans = _owned(tokens), _owned(answer_index)
    targets = torch.full((b, t), IGNORE, dtype=torch.long)
    targets.scatter_(1, ans, torch.gather(tok, 1, ans + 1))
    return Batch(
        tokens=tok,
        targets=targets,
        position_ids=torch.arange(t, dtype=torch.long).expand(b, t).contiguous(),
        answer_index=ans,
        dependencies=_owned(dependencies),
        prompt_length=prompt_length,
        coupled_ids=None if coupled_ids is None else _owned(coupled_ids),
    )


def _owned(a: np.ndarray) -> torch.Tensor:
    """An int64 tensor with its own memory: tasks pass np.broadcast_to views, which are read-only (and
    np.ascontiguousarray keeps a one-row view as it is, so torch warned about non-writable arrays)."""
    return torch.from_numpy(np.array(a, dtype=np.int64, order="C", copy=True))


TASKS: Registry[Task] = Registry("task")
register_task = TASKS.register


def make_task(name: str, **params: Any) -> Task:
    """Build a registered task from its name and parameters (validated)."""
    return TASKS.create(name, **params)
