"""Output heads: what the model computes from its final hidden states at the answer rows.

Every model has the next-token head (``lengen.heads.token``). Further heads are built from the model
config by the builders registered here (``register_head``), so the model knows none of them by name:
``Transformer`` asks every builder for a head and keeps the ones it returns. A head owns

- its build (the builder: parameters from the config, None when the config does not ask for it),
- its outputs at the answer rows (``outputs``; it may change the rows the token head reads next),
- its loss against the targets it derives from a batch (``targets``, ``loss``, ``loss_weight``),
- its decode step (``decode``: what it predicts from its outputs, e.g. the next token's id).

A head that predicts the next token's position id (``predicts_ids``) lets generation feed every emitted
token with the id the model chose, instead of an id taken from the task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from lengen.registry import FunctionRegistry

if TYPE_CHECKING:
    from lengen.model_config import ModelConfig
    from lengen.positions import PositionScheme
    from lengen.tasks import Batch


@dataclass
class Prompt:
    """What a head may read of the prompt: computed once per sequence (generation reuses it every step)."""

    hidden: torch.Tensor  # [B, P, d_model] final hidden states of the prompt tokens
    tokens: torch.Tensor  # [B, P]
    ids: torch.Tensor  # [B, P] the prompt's (prepared) position ids
    embed: nn.Embedding  # the model's token embedding


class OutputHead(nn.Module):
    """Base class of the heads beyond the token head (see the module doc)."""

    # True for a head whose ``decode`` gives the position id of the next token
    predicts_ids: ClassVar[bool] = False

    def memory(self, prompt: Prompt) -> torch.Tensor:
        """What the head reads of the prompt at every answer row (default: the prompt's hidden states)."""
        return prompt.hidden

    def outputs(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: torch.Tensor,
                prompt_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows for the token head, this head's outputs) for hidden ``rows`` [B, A, d] with ids ``row_ids``."""
        raise NotImplementedError

    def targets(self, batch: Batch, ids: torch.Tensor) -> torch.Tensor:
        """What the outputs are trained to predict at the answer rows, [B, A]."""
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, prompt_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss_weight(self, train: Any) -> float:
        """The weight of this head's loss beside the token loss, from the train section (default 1)."""
        return 1.0

    def allowed(self, prompt_ids: torch.Tensor) -> torch.Tensor | None:
        """A mask of the predictions ``decode`` may choose when restricted to the prompt (None: no mask)."""
        return None

    def decode(self, outputs: torch.Tensor, prompt_ids: torch.Tensor,
               allowed: torch.Tensor | None = None) -> torch.Tensor:
        """The greedy prediction at every row, [B, A]."""
        raise NotImplementedError

    def legacy_keys(self) -> dict[str, str]:
        """{state-dict key in older checkpoints: key inside this head}, for loading them (default none)."""
        return {}


HeadBuilder = Callable[["ModelConfig", "PositionScheme"], "OutputHead | None"]
HEAD_BUILDERS: FunctionRegistry[HeadBuilder] = FunctionRegistry("output head")
HEADS: dict[str, HeadBuilder] = HEAD_BUILDERS.functions  # the model asks each, in registration order

# ``@register_head(name)`` registers a builder ``(model config, position scheme) -> head or None``
register_head = HEAD_BUILDERS.register


# config validators of the heads' own fields (called by ModelConfig.validate)
VALIDATORS: list[Callable[[ModelConfig], None]] = []


def register_validator(check: Callable[[ModelConfig], None]) -> Callable[[ModelConfig], None]:
    VALIDATORS.append(check)
    return check
