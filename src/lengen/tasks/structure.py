"""Ground-truth dependency structure of a task, measured from the dependency sets it samples.

For every scored output token with a non-empty dependency set (EOS and padding, which depend on no
token's value, are left out and counted separately):
- k: the size of its dependency set (sparsity);
- span: max - min of the dependency positions (how spread out the k tokens are: locality);
- reach: prediction position - the earliest dependency (how far back the prediction must look);
- in coupled-id space, where the task has coupled ids: the id span (max - min of the dependencies'
  ids) and the id reach (the largest |id of a dependency - id of the prediction position|).
Each is summarised by mean, p90 and max over tokens and samples, at two lengths, so that "does k grow
with the length" is a measurement rather than a claim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lengen.tasks.base import Task

# a statistic "grows" when its p90 is more than 10% larger at twice the length: the p90 (not the mean,
# not the max) so that a varying share of absent digits (addition's shorter operand) or a rare long run
# (filter_copy) does not count as growth
GROWTH = 1.1


@dataclass
class Summary:
    mean: float
    p90: float
    max: float

    @staticmethod
    def of(values: np.ndarray) -> Summary:
        if values.size == 0:
            return Summary(float("nan"), float("nan"), float("nan"))
        return Summary(float(values.mean()), float(np.percentile(values, 90)), float(values.max()))


@dataclass
class LengthStructure:
    length: int
    k: Summary
    span: Summary
    reach: Summary
    id_span: Summary | None
    id_reach: Summary | None
    tokens: int  # output tokens with a non-empty dependency set
    empty: int  # output tokens that depend on no token (EOS, padding)


@dataclass
class TaskStructure:
    task: str
    args: dict[str, Any]
    short: LengthStructure
    long: LengthStructure

    @property
    def k_grows(self) -> bool:
        return self.long.k.p90 > GROWTH * self.short.k.p90

    @property
    def span_grows(self) -> bool:
        return self.long.span.p90 > GROWTH * max(self.short.span.p90, 0.5)

    @property
    def id_span_grows(self) -> bool | None:
        if self.short.id_span is None or self.long.id_span is None:
            return None
        return self.long.id_span.p90 > GROWTH * max(self.short.id_span.p90, 0.5)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(k_grows=self.k_grows, span_grows=self.span_grows, id_span_grows=self.id_span_grows)
        return out


def measure_length(task: Task, length: int, samples: int = 256, seed: int = 0) -> LengthStructure:
    """Dependency-set statistics of ``samples`` fresh samples at one length."""
    batch = task.sample(np.random.default_rng([seed, length]), samples, length)
    deps = batch.dependencies.numpy()  # [B, A, D]
    valid = deps >= 0
    k = valid.sum(-1)
    used = k > 0
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    lo = np.where(valid, deps, big).min(-1)
    hi = np.where(valid, deps, small).max(-1)
    at = batch.answer_index.numpy()
    id_span = id_reach = None
    if batch.coupled_ids is not None:
        ids = batch.coupled_ids.numpy()
        dep_ids = np.take_along_axis(ids[:, None, :].repeat(deps.shape[1], 1), np.clip(deps, 0, None), 2)
        id_lo = np.where(valid, dep_ids, big).min(-1)
        id_hi = np.where(valid, dep_ids, small).max(-1)
        own = np.take_along_axis(ids, at, 1)
        far = np.where(valid, np.abs(dep_ids - own[..., None]), 0).max(-1)
        id_span, id_reach = Summary.of((id_hi - id_lo)[used]), Summary.of(far[used])
    return LengthStructure(length, Summary.of(k[used]), Summary.of((hi - lo)[used]), Summary.of((at - lo)[used]),
                           id_span, id_reach, int(used.sum()), int((~used).sum()))


def task_structure(task: Task, length: int, samples: int = 256, seed: int = 0,
                   args: dict[str, Any] | None = None) -> TaskStructure:
    """The structure at ``length`` and at twice it (the comparison that says whether k grows)."""
    length = max(length, task.min_length())
    return TaskStructure(task.name, dict(args or {}), measure_length(task, length, samples, seed),
                         measure_length(task, 2 * length, samples, seed))
