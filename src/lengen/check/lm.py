"""One interface over a lengen model and a Hugging Face causal LM: next-token log-probabilities of the
last position of each row, with explicit position ids (so a row holding a subset of a context keeps
the distances it had in the full context), and loss at every position of a window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lengen.position_ids import prepare_position_ids
from lengen.text.length_eval import token_losses

LastLogprobs = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (tokens [B,T], ids [B,T]) -> [B, V]
WindowLosses = Callable[[torch.Tensor], torch.Tensor]  # windows [W, C] -> loss of tokens 1..C-1, [W, C-1]


@dataclass
class LM:
    last_logprobs: LastLogprobs
    window_losses: WindowLosses
    description: str
    context: int | None  # declared training context (None: unknown)
    batch_rows: int = 64


def lengen_lm(model: Any, description: str = "lengen reference", context: int | None = None) -> LM:
    model.eval()
    device = next(model.parameters()).device

    @torch.no_grad()
    def last_logprobs(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        hidden = model.hidden(tokens.to(device), prepare_position_ids(model, ids.to(device)))[:, -1]
        return torch.log_softmax(model.head(hidden).float(), -1).cpu()

    @torch.no_grad()
    def window_losses(windows: torch.Tensor) -> torch.Tensor:
        return token_losses(model, windows)

    return LM(last_logprobs, window_losses, description, context)


def hf_lm(model: Any, description: str, context: int | None) -> LM:
    model.eval()

    @torch.no_grad()
    def last_logprobs(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=tokens, position_ids=ids, logits_to_keep=1, use_cache=False).logits[:, -1]
        return torch.log_softmax(logits.float(), -1)

    @torch.no_grad()
    def window_losses(windows: torch.Tensor) -> torch.Tensor:
        out = []
        for w in windows:
            logits = model(input_ids=w[None, :-1], use_cache=False).logits[0].float()
            out.append(F.cross_entropy(logits, w[1:], reduction="none"))
        return torch.stack(out)

    return LM(last_logprobs, window_losses, description, context, batch_rows=16)


def target_logprob(lm: LM, tokens: torch.Tensor, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log p(target | row) for every row, in batches of ``lm.batch_rows``, [B]."""
    out = []
    for i in range(0, tokens.shape[0], lm.batch_rows):
        lp = lm.last_logprobs(tokens[i:i + lm.batch_rows], ids[i:i + lm.batch_rows])
        out.append(lp.gather(1, target[i:i + lm.batch_rows, None].to(lp.device))[:, 0].cpu())
    return torch.cat(out) if out else torch.empty(0)
