"""Greedy autoregressive generation, with a KV cache or by recomputing the whole prefix.

Every emitted token needs a position id before it can be fed back:
- plain and coupled ids given by the task (``output_ids``): the id the sequence would have there;
- Predictive Position Coupling (``predict_ids``): the id the model's position head predicted at the
  same step as the token. No id of the answer is taken from the task. With ``restrict_ids`` the
  prediction is restricted to ids that occur in the prompt: in every coupled task an output shares
  its id with an input token or with the separator (the "end" id). A pointer head
  (``position_head_kind: pointer``) always predicts the id of a prompt token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lengen.errors import LengenError
from lengen.model import KVCache, Transformer


@dataclass
class Generation:
    tokens: torch.Tensor  # [B, steps] the emitted tokens
    ids: torch.Tensor  # [B, steps] the position id each emitted token was (or would be) fed with


def prompt_id_mask(prompt_ids: torch.Tensor, classes: int) -> torch.Tensor:
    """[B, classes] True for the ids that occur in each prompt."""
    mask = torch.zeros(prompt_ids.shape[0], classes, dtype=torch.bool, device=prompt_ids.device)
    return mask.scatter_(1, prompt_ids.clamp(max=classes - 1), True)


@torch.no_grad()
def generate(model: Transformer, prompt: torch.Tensor, prompt_ids: torch.Tensor, steps: int,
             output_ids: torch.Tensor | None = None, predict_ids: bool = False, use_cache: bool = True,
             restrict_ids: bool = True) -> Generation:
    """Greedily emit ``steps`` tokens after ``prompt`` [B, P] whose (prepared) ids are ``prompt_ids``.

    Exactly one of ``output_ids`` [B, steps] (ids for the emitted tokens) and ``predict_ids`` (PPC).
    """
    if predict_ids == (output_ids is not None):
        raise LengenError("generate: give output_ids, or set predict_ids for a model with a position head")
    if predict_ids and model.position_head is None:
        raise LengenError("generate: predict_ids needs a model with a position head (PPC)")
    if output_ids is not None and output_ids.shape[1] < steps:
        raise LengenError(f"generate: output_ids has {output_ids.shape[1]} ids for {steps} steps")
    model.eval()
    allowed = None
    if predict_ids and restrict_ids and model.position_head is not None and not model.pointer:
        allowed = prompt_id_mask(prompt_ids, model.position_classes)
    cache = KVCache() if use_cache else None
    seq, seq_ids = prompt, prompt_ids
    prompt_hidden = model.hidden(prompt, prompt_ids, cache)  # causal: the same rows whatever follows
    memory = model.pointer_memory(prompt_hidden, prompt) if model.pointer else prompt_hidden
    last, last_id = prompt_hidden[:, -1], prompt_ids[:, -1]
    tokens, ids = [], []
    for step in range(steps):
        logits, scores = model.answer_outputs(last[:, None], last_id[:, None], memory, prompt_ids)
        token = logits[:, 0].argmax(-1)
        if predict_ids and model.pointer:
            assert scores is not None
            pid = prompt_ids.gather(1, scores[:, 0].argmax(-1, keepdim=True))[:, 0]
        elif predict_ids:
            assert scores is not None
            scores = scores[:, 0]
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            pid = scores.argmax(-1)
        else:
            assert output_ids is not None
            pid = output_ids[:, step]
        tokens.append(token)
        ids.append(pid)
        last_id = pid
        if step == steps - 1:
            break
        if cache is not None:
            last = model.hidden(token[:, None], pid[:, None], cache)[:, -1]
        else:
            seq = torch.cat([seq, token[:, None]], dim=1)
            seq_ids = torch.cat([seq_ids, pid[:, None]], dim=1)
            last = model.hidden(seq, seq_ids)[:, -1]
    return Generation(torch.stack(tokens, 1), torch.stack(ids, 1))
