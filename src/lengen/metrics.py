"""Evaluation metrics: one function per metric, registered by name.

A metric reads one evaluated batch (``Scored``) and returns a (sum, count) pair, or None when the
batch does not carry what it needs (e.g. predicted ids without an id-predicting head); evaluation sums
both over batches and reports sum / count. A new metric is one function plus ``@register_metric``:

    @register_metric("first_token_accuracy")
    def first_token_accuracy(s: Scored) -> Tally:
        hit = s.tokens[:, 0] == s.answers[:, 0]
        return hit.sum(), hit.numel()

and is asked for by name (``lengen.evaluate.evaluate(..., metrics=[...])``). Sums may be tensors
(``loss_by_position``: one value per answer position), then the result is a list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from lengen.registry import FunctionRegistry


@dataclass
class Scored:
    """One evaluated batch as the metrics see it."""

    tokens: torch.Tensor  # [B, A] predicted answer tokens (teacher-forced argmax, or generated)
    answers: torch.Tensor  # [B, A] the true answer tokens
    ids: torch.Tensor | None = None  # [B, A'] predicted position ids of the emitted tokens (id-predicting heads)
    true_ids: torch.Tensor | None = None  # [B, A'] the task's ids there
    token_loss: torch.Tensor | None = None  # [B, A] cross-entropy of each answer token (teacher-forced)

    @property
    def hit(self) -> torch.Tensor:
        return self.tokens == self.answers


Tally = tuple[torch.Tensor | int | float, torch.Tensor | int | float]
Metric = Callable[[Scored], Tally | None]
# other packages' metrics come from the entry-point group lengen.metrics, loaded at the first lookup
REGISTRY: FunctionRegistry[Metric] = FunctionRegistry("metric", group="lengen.metrics")
METRICS: dict[str, Metric] = REGISTRY.functions
DEFAULT_METRICS = ("accuracy", "exact_match", "position_accuracy")

# ``@register_metric(name)`` registers a metric ``(Scored) -> (sum, count) or None`` under ``name``
register_metric = REGISTRY.register


def check_metrics(names: Iterable[str]) -> list[str]:
    """``names`` as a list, each a registered metric (plugins included)."""
    return REGISTRY.check(names)


@register_metric("accuracy")
def accuracy(s: Scored) -> Tally:
    """Fraction of answer tokens right."""
    return s.hit.sum(), s.hit.numel()


@register_metric("exact_match")
def exact_match(s: Scored) -> Tally:
    """Fraction of samples with every answer token right."""
    return s.hit.all(dim=1).sum(), s.hit.shape[0]


@register_metric("position_accuracy")
def position_accuracy(s: Scored) -> Tally | None:
    """Fraction of the predicted position ids that equal the task's (models whose heads predict ids)."""
    if s.ids is None or s.true_ids is None:
        return None
    hit = s.ids == s.true_ids
    return hit.sum(), hit.numel()


@register_metric("token_loss")
def token_loss(s: Scored) -> Tally | None:
    """Mean cross-entropy of the answer tokens (teacher-forced evaluation only)."""
    if s.token_loss is None:
        return None
    return s.token_loss.double().sum(), s.token_loss.numel()


@register_metric("loss_by_position")
def loss_by_position(s: Scored) -> Tally | None:
    """Mean cross-entropy at each answer position [A] (teacher-forced evaluation only)."""
    if s.token_loss is None:
        return None
    return s.token_loss.double().sum(0).cpu(), s.token_loss.shape[0]


class Tallies:
    """Sums and counts of some metrics over batches."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = check_metrics(names)
        self.sums: dict[str, list[Any]] = {}

    def add(self, scored: Scored) -> None:
        for name in self.names:
            tally = METRICS[name](scored)
            if tally is None:
                continue
            # integer sums stay Python ints (exact), float sums float64
            total, count = (t.item() if isinstance(t, torch.Tensor) and t.dim() == 0 else t for t in tally)
            if name in self.sums:
                self.sums[name][0] = self.sums[name][0] + total
                self.sums[name][1] = self.sums[name][1] + count
            else:
                self.sums[name] = [total, count]

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (total, count) in self.sums.items():
            value = total / max(count, 1)
            out[name] = value.tolist() if isinstance(value, torch.Tensor) else value
        return out
