"""Predictive Position Coupling (PPC): heads that predict the position id of the next token.

Configured by the ``position_head*`` and ``pointer_*`` fields of the model config (flat keys, as in
every experiment file). Three kinds:

- ``classes``: a classifier over absolute id classes (``PositionClassifier``), optionally tied to the
  scheme's learned id table (``position_head_tied``: scores are a projection of the hidden state
  against each id's row of the table, the scheme's ``id_table`` hook);
- ``pointer`` with ``pointer_distance`` ``exact`` / ``interpolated`` (``PositionPointer``): every
  prompt token is scored as the source of the next token's id, by content plus a learned vector per
  clipped relative coupled-id distance; the predicted id is the best prompt token's id, so no absolute
  id class is needed and the scheme may have no id table;
- ``pointer`` with ``pointer_distance: counts`` (``CountsPointerHead``, ``lengen.heads.pointer``): no
  per-distance parameter at all.

A pointer that feeds the token head (``pointer_feeds_token``) adds the pointer-weighted prompt memory
(projected) to the rows before the token head reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from lengen.errors import ConfigError
from lengen.heads.base import OutputHead, Prompt, register_head, register_validator
from lengen.heads.pointer import CountPointer

if TYPE_CHECKING:
    from lengen.model_config import ModelConfig
    from lengen.positions import PositionScheme
    from lengen.tasks import Batch


@register_validator
def validate_ppc(cfg: ModelConfig) -> None:
    if cfg.position_head_kind not in ("classes", "pointer"):
        raise ConfigError(f"model: position_head_kind must be 'classes' or 'pointer', got "
                          f"{cfg.position_head_kind!r}")
    if cfg.position_head_kind == "pointer" and cfg.position_head_tied:
        raise ConfigError("model: position_head_tied applies to position_head_kind 'classes' only")
    if cfg.pointer_distance not in ("exact", "interpolated", "counts"):
        raise ConfigError(f"model: pointer_distance must be 'exact', 'interpolated' or 'counts', got "
                          f"{cfg.pointer_distance!r}")
    if cfg.pointer_gates < 1:
        raise ConfigError(f"model: pointer_gates must be >= 1, got {cfg.pointer_gates}")
    if cfg.pointer_keys not in ("hidden", "embed"):
        raise ConfigError(f"model: pointer_keys must be 'hidden' or 'embed', got {cfg.pointer_keys!r}")
    if cfg.pointer_max_distance < 1 or (cfg.pointer_max_back is not None and cfg.pointer_max_back < 1):
        raise ConfigError(f"model: pointer_max_distance and pointer_max_back must be >= 1, got "
                          f"{cfg.pointer_max_distance}, {cfg.pointer_max_back}")
    if cfg.position_classes is not None and cfg.position_classes < 2:
        raise ConfigError(f"model: position_classes must be >= 2, got {cfg.position_classes}")


def pointer_anchors(clip: int) -> list[int]:
    """0, 1, 2, 3, 4, 6, 8, 12, 16, 24, ... below ``clip``, then ``clip`` (the pointer's anchor distances)."""
    out, a = [0], 1
    while a < clip:
        out.append(a)
        a = a + 1 if a < 4 else a + (a // 2 if (a & (a - 1)) == 0 else a // 3)
    return out + [clip]


def next_position_targets(batch: Batch, ids: torch.Tensor) -> torch.Tensor:
    """PPC targets: the (prepared) position id of the token after each answer position, [B, A]."""
    return torch.gather(ids, 1, batch.answer_index + 1)


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


class PositionHead(OutputHead):
    """What every PPC head shares: targets, loss weight, and the next id as the decode step."""

    predicts_ids = True

    def targets(self, batch: Batch, ids: torch.Tensor) -> torch.Tensor:
        return next_position_targets(batch, ids)

    def loss_weight(self, train: Any) -> float:
        return float(train.position_loss_weight)


class PositionClassifier(PositionHead):
    """Logits over absolute id classes [B, A, classes] (``position_head_kind: classes``)."""

    def __init__(self, d_model: int, classes: int, table: Callable[[], nn.Embedding | None] | None = None) -> None:
        super().__init__()
        # tied: one d_model projection scored against the scheme's id table, read at call time (the
        # table belongs to the scheme; holding the module here would register its weight twice)
        self.classes = classes
        self.proj = nn.Linear(d_model, d_model if table is not None else classes, bias=False)
        self.table = table

    def outputs(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: torch.Tensor,
                prompt_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        table = self.table() if self.table is not None else None
        logits = self.proj(rows) @ table.weight.T if table is not None else self.proj(rows)
        return rows, logits

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, prompt_ids: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.flatten(0, 1), targets.flatten())

    def allowed(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """[B, classes] True for the ids that occur in each prompt: in every coupled task an output shares
        its id with an input token or with the separator (the "end" id)."""
        mask = torch.zeros(prompt_ids.shape[0], self.classes, dtype=torch.bool, device=prompt_ids.device)
        return mask.scatter_(1, prompt_ids.clamp(max=self.classes - 1), True)

    def decode(self, outputs: torch.Tensor, prompt_ids: torch.Tensor,
               allowed: torch.Tensor | None = None) -> torch.Tensor:
        if allowed is not None:
            outputs = outputs.masked_fill(~allowed[:, None, :], float("-inf"))
        return outputs.argmax(-1)

    def legacy_keys(self) -> dict[str, str]:
        return {"position_head.weight": "proj.weight"}


class Pointer(PositionHead):
    """Scores [B, A, P] of "the next token's id is prompt token p's id"; subclasses give ``scores``."""

    def __init__(self, d_model: int, keys: str, feeds_token: bool) -> None:
        super().__init__()
        self.keys = keys
        self.feeds_token = feeds_token

    def add_value(self, d_model: int) -> None:
        # registered after the scoring parameters: the initialisation draws in the order of earlier releases
        self.value = nn.Linear(d_model, d_model, bias=False) if self.feeds_token else None

    def memory(self, prompt: Prompt) -> torch.Tensor:
        """Prompt tokens are scored and read by their hidden states or by their token embeddings alone
        (``pointer_keys: embed``: the same at every length, so nothing drifts with length)."""
        return prompt.embed(prompt.tokens) if self.keys == "embed" else prompt.hidden

    def scores(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: torch.Tensor,
               prompt_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def outputs(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: torch.Tensor,
                prompt_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.scores(rows, row_ids, memory, prompt_ids)
        if self.value is not None:
            read = torch.softmax(scores.float(), dim=-1).to(memory.dtype) @ memory
            rows = rows + self.value(read)
        return rows, scores

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, prompt_ids: torch.Tensor) -> torch.Tensor:
        return pointer_loss(outputs, prompt_ids, targets)

    def decode(self, outputs: torch.Tensor, prompt_ids: torch.Tensor,
               allowed: torch.Tensor | None = None) -> torch.Tensor:
        """The id of the best-scored prompt token (always an id of the prompt)."""
        return prompt_ids.gather(1, outputs.argmax(-1))


class PositionPointer(Pointer):
    """Content plus one learned vector per clipped relative distance, added to the keys (Shaw et al.
    2018): the query decides how much each distance counts. ``interpolated``: vectors at the anchor
    distances only (``pointer_anchors``), linearly interpolated between them."""

    def __init__(self, d_model: int, ahead: int, back: int, interpolated: bool, keys: str, feeds_token: bool) -> None:
        super().__init__(d_model, keys, feeds_token)
        self.ahead, self.back = ahead, back
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        anchors = [-a for a in reversed(pointer_anchors(back)[1:])] + pointer_anchors(ahead)
        self.anchors: torch.Tensor | None
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32) if interpolated else None,
                             persistent=False)
        self.distance = nn.Embedding(len(anchors) if interpolated else back + ahead + 1, d_model)
        self.add_value(d_model)

    def scores(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: torch.Tensor,
               prompt_ids: torch.Tensor) -> torch.Tensor:
        q, k = self.query(rows), self.key(memory)
        rel = (prompt_ids[:, None, :] - row_ids[:, :, None]).clamp(-self.back, self.ahead)  # [B, A, P]
        content = q @ k.transpose(1, 2)
        anchors = self.anchors
        if anchors is None:
            relative = (q[:, :, None, :] * self.distance(rel + self.back)).sum(-1)
        else:  # linear interpolation between the two anchors around each distance
            hi = torch.searchsorted(anchors, rel.float().contiguous(), right=False).clamp(1, len(anchors) - 1)
            lo = hi - 1
            w = ((rel.float() - anchors[lo]) / (anchors[hi] - anchors[lo])).clamp(0, 1)
            table = q @ self.distance.weight.T  # [B, A, anchors]: the query against every anchor vector
            relative = torch.lerp(table.gather(2, lo), table.gather(2, hi), w.to(table.dtype))
        return (content + relative) / math.sqrt(q.shape[-1])

    def legacy_keys(self) -> dict[str, str]:
        return {"position_head.weight": "query.weight", "pointer_key.weight": "key.weight",
                "pointer_bias.weight": "distance.weight", "pointer_value.weight": "value.weight"}


class CountsPointerHead(Pointer):
    """``pointer_distance: counts``: the scores of ``CountPointer`` (no per-distance parameter)."""

    def __init__(self, d_model: int, gates: int, keys: str, feeds_token: bool) -> None:
        super().__init__(d_model, keys, feeds_token)
        self.scorer = CountPointer(d_model, gates)
        self.add_value(d_model)

    def scores(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: torch.Tensor,
               prompt_ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.scorer(rows, row_ids, memory, prompt_ids)
        return out

    def legacy_keys(self) -> dict[str, str]:
        names = ("query", "key", "gate_key", "feature")
        return {f"position_head.{n}.weight": f"scorer.{n}.weight" for n in names} | \
            {"pointer_value.weight": "value.weight"}


@register_head("position")
def build_position_head(cfg: ModelConfig, positions: PositionScheme) -> PositionHead | None:
    if not cfg.position_head:
        return None
    if cfg.position_head_kind == "pointer" and cfg.pointer_distance == "counts":
        return CountsPointerHead(cfg.d_model, cfg.pointer_gates, cfg.pointer_keys, cfg.pointer_feeds_token)
    if cfg.position_head_kind == "pointer":
        return PositionPointer(cfg.d_model, cfg.pointer_max_distance, cfg.pointer_max_back or cfg.pointer_max_distance,
                               cfg.pointer_distance == "interpolated", cfg.pointer_keys, cfg.pointer_feeds_token)
    classes = cfg.position_classes or positions.max_position()
    if classes is None:
        raise ConfigError(f"model: position_head needs position_classes (scheme {cfg.position} has no "
                          f"max_position)")
    table = positions.id_table()
    if not cfg.position_head_tied:
        return PositionClassifier(cfg.d_model, classes)
    if table is None:
        raise ConfigError(f"model: position_head_tied needs a scheme with a learned id table, not {cfg.position}")
    return PositionClassifier(cfg.d_model, table.num_embeddings, positions.id_table)
