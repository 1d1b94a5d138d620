"""Evaluation at lengths far beyond training: answer accuracy and exact match per sample.

Evaluation data comes from its own seeded stream (``eval.seed`` and the length), so every model of an
experiment is scored on the same samples. Batches are sized by length to bound memory.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from lengen.answers import answer_logits
from lengen.errors import LengenError
from lengen.generate import generate
from lengen.model import Transformer
from lengen.position_ids import prepare_position_ids
from lengen.tasks import Batch, Task


def eval_batch_size(seq_len: int, n_heads: int, samples: int, vocab: int = 0) -> int:
    """Keep activations (~B*T), attention scores (~B*H*T*T floats) and, with ``vocab``, the logits of
    every position (~B*T*V floats: what a language model's evaluation computes) bounded as T grows."""
    by_tokens = (1 << 17) // seq_len
    by_scores = (1 << 26) // (n_heads * seq_len * seq_len)
    by_logits = (1 << 26) // (seq_len * vocab) if vocab else by_tokens
    return max(1, min(samples, by_tokens, by_scores, by_logits))


@torch.no_grad()
def evaluate_length(model: Transformer, task: Task, length: int, samples: int, seed: int,
                    ids_kind: str = "plain", device: torch.device | None = None) -> dict[str, float]:
    """Teacher-forced answer accuracy and per-sample exact match at one length."""
    model.eval()
    device = device or next(model.parameters()).device
    rng = np.random.default_rng([seed, length])
    gen = torch.Generator().manual_seed(seed * 1_000_003 + length)
    correct = exact = done = 0
    seq_len = length + 8
    while done < samples:
        n = min(eval_batch_size(seq_len, model.cfg.n_heads, samples, model.cfg.vocab_size), samples - done)
        batch = task.sample(rng, n, length)
        seq_len = batch.tokens.shape[1]
        batch.position_ids = prepare_position_ids(model, batch, ids_kind, gen)
        batch = batch.to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext():
            logits = answer_logits(model, batch, batch.position_ids)
        hit = logits.argmax(-1) == batch.answers()
        correct += int(hit.sum())
        exact += int(hit.all(dim=1).sum())
        done += n
        answers_per_sample = hit.shape[1]
    return {"accuracy": correct / (done * answers_per_sample), "exact_match": exact / done, "n_eval": done}


def generation_inputs(batch: Batch, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Prompt tokens, prompt ids and the number of answer tokens, for answers that end the sequence."""
    p, a = batch.prompt_length, batch.answer_index.shape[1]
    expected = torch.arange(p - 1, p - 1 + a, device=batch.answer_index.device)
    if batch.tokens.shape[1] != p + a or not bool((batch.answer_index == expected).all()):
        raise LengenError("generation needs the answer to be the tokens after the prompt, to the end")
    return batch.tokens[:, :p], ids[:, :p], a


@torch.no_grad()
def evaluate_generation_length(model: Transformer, task: Task, length: int, samples: int, seed: int,
                               ids_kind: str = "plain", restrict_ids: bool = True,
                               device: torch.device | None = None) -> dict[str, float]:
    """Greedy decoding with a KV cache: per-token accuracy and exact match of the whole answer.

    With a position head (PPC) every emitted token is fed with the id the model predicted, and
    ``position_accuracy`` is the fraction of those ids equal to the task's coupled ids. Otherwise the
    emitted tokens take the ids the task gives (plain, or coupled: an oracle unless
    ``task.ids_from_layout``).
    """
    model.eval()
    device = device or next(model.parameters()).device
    rng = np.random.default_rng([seed, length])
    gen = torch.Generator().manual_seed(seed * 1_000_003 + length)
    ppc = model.id_head() is not None and ids_kind == "coupled"
    correct = exact = id_correct = done = 0
    scored = 0
    seq_len = 2 * length + 8
    while done < samples:
        n = min(eval_batch_size(seq_len, model.cfg.n_heads, samples, model.cfg.vocab_size), samples - done)
        batch = task.sample(rng, n, length)
        seq_len = batch.tokens.shape[1]
        ids = prepare_position_ids(model, batch, ids_kind, gen)
        batch = batch.to(device)
        ids = ids.to(device)
        prompt, prompt_ids, steps = generation_inputs(batch, ids)
        out = generate(model, prompt, prompt_ids, steps, output_ids=None if ppc else ids[:, -steps:],
                       predict_ids=ppc, restrict_ids=restrict_ids)
        hit = out.tokens == batch.answers()
        correct += int(hit.sum())
        exact += int(hit.all(dim=1).sum())
        if ppc:
            # the last emitted token (EOS) is never fed back, so its id is not scored
            id_correct += int((out.ids[:, :-1] == ids[:, -steps:-1]).sum())
        scored += hit.numel()
        done += n
    result = {"accuracy": correct / scored, "exact_match": exact / done, "n_eval": done}
    if ppc:
        result["position_accuracy"] = id_correct / max(1, done * (steps - 1))
    return result


def evaluate(model: Transformer, task: Task, lengths: list[int], samples: int, seed: int,
             ids_kind: str = "plain", mode: str = "auto", restrict_ids: bool = True) -> list[dict[str, Any]]:
    """One result per length: eval_len, accuracy, exact_match, n_eval (and eval_mode, oracle_ids).

    ``mode`` auto generates for tasks with multi-token answers and scores teacher-forced otherwise.
    ``oracle_ids`` marks runs that fed the model coupled ids of the answer that only the solution gives.
    """
    generating = mode == "generate" or (mode == "auto" and task.multi_token)
    oracle = ids_kind == "coupled" and not task.ids_from_layout and not (
        generating and model.id_head() is not None)
    out: list[dict[str, Any]] = []
    for n in lengths:
        row = (evaluate_generation_length(model, task, n, samples, seed, ids_kind, restrict_ids) if generating
               else evaluate_length(model, task, n, samples, seed, ids_kind))
        out.append({"eval_len": n, **row, "eval_mode": "generate" if generating else "teacher",
                    "oracle_ids": oracle})
    return out
