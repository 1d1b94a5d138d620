"""The model's outputs at answer positions, and the loss on them (shared by training, evaluation and
the held-out checks of ``lengen.monitor``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from lengen.model import Transformer
from lengen.tasks import Batch


@dataclass
class AnswerOutputs:
    """Everything the model's heads give at the answer rows of a batch."""

    logits: torch.Tensor  # [B, A, vocab] next-token logits (float32)
    extra: dict[str, torch.Tensor]  # every other output head's outputs by head name (float32)
    prompt_ids: torch.Tensor  # [B, P] the prompt's ids (a head may decode into them)


def answer_outputs(model: Transformer, batch: Batch, ids: torch.Tensor) -> AnswerOutputs:
    """The heads' outputs at the answer positions: only the answer rows go through the heads."""
    hidden = model.hidden(batch.tokens, ids)
    index = batch.answer_index[:, :, None].expand(-1, -1, hidden.shape[-1])
    rows = torch.gather(hidden, 1, index)
    p = batch.prompt_length
    memory = model.prompt_memory(hidden[:, :p], batch.tokens[:, :p], ids[:, :p])
    logits, extra = model.answer_outputs(rows, torch.gather(ids, 1, batch.answer_index), memory, ids[:, :p])
    return AnswerOutputs(logits.float(), {k: v.float() for k, v in extra.items()}, ids[:, :p])


def answer_logits(model: Transformer, batch: Batch, ids: torch.Tensor) -> torch.Tensor:
    """Logits at the answer positions only, [B, A, vocab]."""
    return answer_outputs(model, batch, ids).logits


def answer_loss(model: Transformer, batch: Batch, ids: torch.Tensor,
                head_weights: Mapping[str, float] | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Cross-entropy on all answer tokens; returns (loss, correct count, scored count), no host sync.

    Every other output head adds its own loss times its weight in ``head_weights`` (by head name;
    1 when not given; a head of weight 0 adds nothing).
    """
    out = answer_outputs(model, batch, ids)
    targets = batch.answers()
    loss = model.head.loss(out.logits, targets)
    for name, head in model.heads().items():
        weight = 1.0 if head_weights is None else head_weights.get(name, 1.0)
        if weight > 0:
            loss = loss + weight * head.loss(out.extra[name], head.targets(batch, ids), out.prompt_ids)
    correct = (model.head.decode(out.logits) == targets).sum()
    return loss, correct, int(targets.numel())


def head_loss_weights(model: Transformer, train: object) -> dict[str, float]:
    """{head name: weight of its loss} as the train section sets them."""
    return {name: head.loss_weight(train) for name, head in model.heads().items()}


def id_predictions(model: Transformer, batch: Batch, ids: torch.Tensor,
                   out: AnswerOutputs) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(predicted, true) next-token position ids [B, A] at the answer rows, for a model whose heads
    predict ids (None otherwise); teacher-forced, unrestricted."""
    for name, head in model.heads().items():
        if head.predicts_ids:
            return head.decode(out.extra[name], out.prompt_ids), head.targets(batch, ids)
    return None
