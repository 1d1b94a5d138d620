"""The model's outputs at answer positions, and the loss on them (shared by training, evaluation and
the held-out checks of ``lengen.monitor``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lengen.errors import LengenError
from lengen.model import Transformer
from lengen.tasks import Batch


def model_ids(batch: Batch, which: str) -> torch.Tensor:
    """The position ids the model consumes: plain 0..T-1, or the task's coupled ids."""
    if which == "coupled":
        if batch.coupled_ids is None:
            raise LengenError("train.ids is 'coupled' but this task defines no coupled ids")
        return batch.coupled_ids
    return batch.position_ids


def answer_logits(model: Transformer, batch: Batch, ids: torch.Tensor) -> torch.Tensor:
    """Logits at the answer positions only, [B, A, vocab] (the LM head runs on those rows alone)."""
    return answer_outputs(model, batch, ids)[0]


def answer_outputs(model: Transformer, batch: Batch,
                   ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token logits [B, A, vocab] and PPC position scores (or None) at the answer positions.

    Only the answer rows go through the heads; a pointer head scores the prompt's tokens.
    """
    hidden = model.hidden(batch.tokens, ids)
    index = batch.answer_index[:, :, None].expand(-1, -1, hidden.shape[-1])
    rows = torch.gather(hidden, 1, index)
    p = batch.prompt_length
    memory = model.pointer_memory(hidden[:, :p], batch.tokens[:, :p]) if model.pointer else hidden[:, :p]
    logits, scores = model.answer_outputs(rows, torch.gather(ids, 1, batch.answer_index), memory, ids[:, :p])
    return logits.float(), None if scores is None else scores.float()


def pointer_loss(scores: torch.Tensor, prompt_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pointer PPC loss: -log of the total probability of the prompt tokens whose id is the target id.

    ``scores`` [B, A, P], ``prompt_ids`` [B, P], ``targets`` [B, A]. Rows whose target id occurs in no
    prompt token are left out (none in the symbol tasks: every output shares an input's or the end id).
    """
    match = prompt_ids[:, None, :] == targets[:, :, None]
    hit = match.any(-1)
    total = torch.logsumexp(scores, -1)
    good = torch.logsumexp(scores.masked_fill(~match, -1e9), -1)  # finite: no NaN gradient on rows left out
    return torch.where(hit, total - good, torch.zeros_like(total)).sum() / hit.sum().clamp(min=1)


def next_position_targets(batch: Batch, ids: torch.Tensor) -> torch.Tensor:
    """PPC targets: the (prepared) position id of the token after each answer position, [B, A]."""
    return torch.gather(ids, 1, batch.answer_index + 1)


def answer_loss(model: Transformer, batch: Batch, ids: torch.Tensor,
                position_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Cross-entropy on all answer tokens; returns (loss, correct count, scored count), no host sync.

    With a position head (PPC), ``position_weight`` times the cross-entropy of the next token's
    position id at the same answer positions is added.
    """
    logits, scores = answer_outputs(model, batch, ids)
    targets = batch.answers()
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    if scores is not None and position_weight > 0:
        pos_targets = next_position_targets(batch, ids)
        pos_loss = pointer_loss(scores, ids[:, :batch.prompt_length], pos_targets) if model.pointer else \
            F.cross_entropy(scores.flatten(0, 1), pos_targets.flatten())
        loss = loss + position_weight * pos_loss
    correct = (logits.argmax(-1) == targets).sum()
    return loss, correct, int(targets.numel())
