"""Greedy autoregressive generation, with a KV cache or by recomputing the whole prefix.

Every emitted token needs a position id before it can be fed back:
- plain and coupled ids given by the task (``output_ids``): the id the sequence would have there;
- predicted (``predict_ids``): the id the model's id-predicting output head (``Transformer.id_head``,
  ``lengen.heads``) decoded at the same step as the token. No id of the answer is taken from
  the task. With ``restrict_ids`` the head may restrict its choice to what the prompt allows (its
  ``allowed`` mask; a head that always predicts a prompt token's id needs none).
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


@torch.no_grad()
def generate(model: Transformer, prompt: torch.Tensor, prompt_ids: torch.Tensor, steps: int,
             output_ids: torch.Tensor | None = None, predict_ids: bool = False, use_cache: bool = True,
             restrict_ids: bool = True) -> Generation:
    """Greedily emit ``steps`` tokens after ``prompt`` [B, P] whose (prepared) ids are ``prompt_ids``.

    Exactly one of ``output_ids`` [B, steps] (ids for the emitted tokens) and ``predict_ids``.
    """
    if predict_ids == (output_ids is not None):
        raise LengenError("generate: give output_ids, or set predict_ids for a model with an id-predicting head")
    id_head = model.id_head() if predict_ids else None
    if predict_ids and id_head is None:
        raise LengenError("generate: predict_ids needs a model with an output head that predicts ids")
    if output_ids is not None and output_ids.shape[1] < steps:
        raise LengenError(f"generate: output_ids has {output_ids.shape[1]} ids for {steps} steps")
    model.eval()
    name = next((n for n, h in model.heads().items() if h is id_head), "")
    allowed = id_head.allowed(prompt_ids) if id_head is not None and restrict_ids else None
    cache = KVCache(capacity=prompt.shape[1] + steps) if use_cache else None
    seq, seq_ids = prompt, prompt_ids
    prompt_hidden = model.hidden(prompt, prompt_ids, cache)  # causal: the same rows whatever follows
    memory = model.prompt_memory(prompt_hidden, prompt, prompt_ids)
    last, last_id = prompt_hidden[:, -1], prompt_ids[:, -1]
    tokens, ids = [], []
    for step in range(steps):
        logits, extra = model.answer_outputs(last[:, None], last_id[:, None], memory, prompt_ids)
        token = model.head.decode(logits[:, 0])
        if id_head is not None:
            pid = id_head.decode(extra[name], prompt_ids, allowed)[:, 0]
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
