"""Evaluation at lengths far beyond training: answer accuracy and exact match per sample.

Evaluation data comes from its own seeded stream (``eval.seed`` and the length), so every model of an
experiment is scored on the same samples. Batches are sized by length to bound memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lengen.answers import answer_logits
from lengen.errors import LengenError
from lengen.generate import generate
from lengen.metrics import DEFAULT_METRICS, Scored, Tallies
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


Scorer = Callable[[Batch, torch.Tensor], Scored]


@torch.no_grad()
def evaluate_at(model: Transformer, task: Task, length: int, samples: int, seed: int, ids_kind: str,
                score: Scorer, metrics: Sequence[str], seq_len: int, device: torch.device | None = None) -> dict[str, Any]:
    """The one evaluation loop: ``samples`` samples at ``length`` from the stream (seed, length), batched
    by length; ``score`` turns a batch (on the device) and its prepared ids into what the metrics read.

    ``seq_len`` is a first guess of the sequence length (batch sizes follow the real one after a batch).
    """
    model.eval()
    device = device or next(model.parameters()).device
    rng = np.random.default_rng([seed, length])
    gen = torch.Generator().manual_seed(seed * 1_000_003 + length)
    tallies = Tallies(metrics)
    done = 0
    while done < samples:
        n = min(eval_batch_size(seq_len, model.cfg.n_heads, samples, model.cfg.vocab_size), samples - done)
        batch = task.sample(rng, n, length)
        seq_len = batch.tokens.shape[1]
        ids = prepare_position_ids(model, batch, ids_kind, gen)
        tallies.add(score(batch.to(device), ids.to(device)))
        done += n
    out = tallies.result()
    # the columns in the order of earlier releases: accuracy, exact_match, n_eval, then the rest
    return {**{k: out.pop(k) for k in ("accuracy", "exact_match") if k in out}, "n_eval": done, **out}


def teacher_scorer(model: Transformer) -> Scorer:
    """Teacher-forced: the greedy token at every answer position given the true prefix, and its loss."""
    def score(batch: Batch, ids: torch.Tensor) -> Scored:
        batch.position_ids = ids
        with torch.autocast("cuda", dtype=torch.bfloat16) if ids.device.type == "cuda" else contextlib.nullcontext():
            logits = answer_logits(model, batch, ids)
        answers = batch.answers()
        loss = F.cross_entropy(logits.transpose(1, 2), answers, reduction="none")
        return Scored(model.head.decode(logits), answers, token_loss=loss)
    return score


def evaluate_length(model: Transformer, task: Task, length: int, samples: int, seed: int,
                    ids_kind: str = "plain", device: torch.device | None = None,
                    metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, Any]:
    """Teacher-forced answer accuracy and per-sample exact match at one length (and other ``metrics``)."""
    return evaluate_at(model, task, length, samples, seed, ids_kind, teacher_scorer(model), metrics,
                       length + 8, device)


def generation_inputs(batch: Batch, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Prompt tokens, prompt ids and the number of answer tokens, for answers that end the sequence."""
    p, a = batch.prompt_length, batch.answer_index.shape[1]
    expected = torch.arange(p - 1, p - 1 + a, device=batch.answer_index.device)
    if batch.tokens.shape[1] != p + a or not bool((batch.answer_index == expected).all()):
        raise LengenError("generation needs the answer to be the tokens after the prompt, to the end")
    return batch.tokens[:, :p], ids[:, :p], a


def generation_scorer(model: Transformer, predict_ids: bool, restrict_ids: bool = True) -> Scorer:
    """Greedy decoding with a KV cache of the answer after the prompt (``lengen.generate``)."""
    def score(batch: Batch, ids: torch.Tensor) -> Scored:
        prompt, prompt_ids, steps = generation_inputs(batch, ids)
        out = generate(model, prompt, prompt_ids, steps, output_ids=None if predict_ids else ids[:, -steps:],
                       predict_ids=predict_ids, restrict_ids=restrict_ids)
        if not predict_ids:
            return Scored(out.tokens, batch.answers())
        # the last emitted token (EOS) is never fed back, so its id is not scored
        return Scored(out.tokens, batch.answers(), ids=out.ids[:, :-1], true_ids=ids[:, -steps:-1])
    return score


def evaluate_generation_length(model: Transformer, task: Task, length: int, samples: int, seed: int,
                               ids_kind: str = "plain", restrict_ids: bool = True,
                               device: torch.device | None = None,
                               metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, Any]:
    """Greedy decoding with a KV cache: per-token accuracy and exact match of the whole answer.

    With an id-predicting output head on coupled ids, every emitted token is fed with the id the
    model predicted, and ``position_accuracy`` is the fraction of those ids equal to the task's
    coupled ids. Otherwise the emitted tokens take the ids the task gives (plain, or coupled: an oracle
    unless ``task.ids_from_layout``).
    """
    predict = model.id_head() is not None and ids_kind == "coupled"
    return evaluate_at(model, task, length, samples, seed, ids_kind, generation_scorer(model, predict, restrict_ids),
                       metrics, 2 * length + 8, device)


def evaluate(model: Transformer, task: Task, lengths: list[int], samples: int, seed: int,
             ids_kind: str = "plain", mode: str = "auto", restrict_ids: bool = True,
             metrics: Sequence[str] = DEFAULT_METRICS) -> list[dict[str, Any]]:
    """One result per length: eval_len, accuracy, exact_match, n_eval (and eval_mode, oracle_ids).

    ``mode`` auto generates for tasks with multi-token answers and scores teacher-forced otherwise.
    ``oracle_ids`` marks runs that fed the model coupled ids of the answer that only the solution gives.
    ``metrics`` names registered metrics (``lengen.metrics``); one that does not apply is left out.
    """
    generating = mode == "generate" or (mode == "auto" and task.multi_token)
    oracle = ids_kind == "coupled" and not task.ids_from_layout and not (
        generating and model.id_head() is not None)
    out: list[dict[str, Any]] = []
    for n in lengths:
        row = (evaluate_generation_length(model, task, n, samples, seed, ids_kind, restrict_ids, metrics=metrics)
               if generating else evaluate_length(model, task, n, samples, seed, ids_kind, metrics=metrics))
        out.append({"eval_len": n, **row, "eval_mode": "generate" if generating else "teacher",
                    "oracle_ids": oracle})
    return out
