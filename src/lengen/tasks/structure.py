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

# a statistic "grows" when both its mean and its p90 are more than 10% larger at twice the length:
# neither alone, so that a varying share of absent digits (addition's shorter operand moves the mean)
# or a discrete p90 stepping from 3 to 4 (filter_copy's gaps) does not count as growth, and never the
# max, which rare long runs move
GROWTH = 1.1


def _grows(short: Summary, long: Summary) -> bool:
    return long.mean > GROWTH * max(short.mean, 0.5) and long.p90 > GROWTH * max(short.p90, 0.5)


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
        return _grows(self.short.k, self.long.k)

    @property
    def span_grows(self) -> bool:
        return _grows(self.short.span, self.long.span)

    @property
    def id_span_grows(self) -> bool | None:
        if self.short.id_span is None or self.long.id_span is None:
            return None
        return _grows(self.short.id_span, self.long.id_span)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(k_grows=self.k_grows, span_grows=self.span_grows, id_span_grows=self.id_span_grows)
        return out


def measure_length(task: Task, length: int, samples: int = 256, seed: int = 0, batch: int = 16) -> LengthStructure:
    """Dependency-set statistics of ``samples`` fresh samples at one length, drawn in batches of ``batch``
    (tasks such as addition draw some layout choices once per batch: many batches see many of them)."""
    rng = np.random.default_rng([seed, length])
    stats: dict[str, list[np.ndarray]] = {name: [] for name in ("k", "span", "reach", "id_span", "id_reach")}
    empty = 0
    has_ids = True
    for start in range(0, samples, batch):
        b = task.sample(rng, min(batch, samples - start), length)
        deps = b.dependencies.numpy()  # [B, A, D]
        valid = deps >= 0
        k = valid.sum(-1)
        used = k > 0
        empty += int((~used).sum())
        big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
        lo = np.where(valid, deps, big).min(-1)
        hi = np.where(valid, deps, small).max(-1)
        at = b.answer_index.numpy()
        stats["k"].append(k[used])
        stats["span"].append((hi - lo)[used])
        stats["reach"].append((at - lo)[used])
        if b.coupled_ids is None:
            has_ids = False
            continue
        ids = b.coupled_ids.numpy()
        dep_ids = np.take_along_axis(ids[:, None, :].repeat(deps.shape[1], 1), np.clip(deps, 0, None), 2)
        own = np.take_along_axis(ids, at, 1)
        stats["id_span"].append((np.where(valid, dep_ids, small).max(-1) - np.where(valid, dep_ids, big).min(-1))[used])
        stats["id_reach"].append(np.where(valid, np.abs(dep_ids - own[..., None]), 0).max(-1)[used])
    flat = {name: np.concatenate(v) if v else np.zeros(0) for name, v in stats.items()}
    return LengthStructure(length, Summary.of(flat["k"]), Summary.of(flat["span"]), Summary.of(flat["reach"]),
                           Summary.of(flat["id_span"]) if has_ids else None,
                           Summary.of(flat["id_reach"]) if has_ids else None, int(flat["k"].size), empty)


def task_structure(task: Task, length: int, samples: int = 256, seed: int = 0,
                   args: dict[str, Any] | None = None) -> TaskStructure:
    """The structure at ``length`` and at twice it (the comparison that says whether k grows)."""
    length = max(length, task.min_length())
    return TaskStructure(task.name, dict(args or {}), measure_length(task, length, samples, seed),
                         measure_length(task, 2 * length, samples, seed))
