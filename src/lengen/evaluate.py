"""Evaluation at lengths far beyond training: answer accuracy and exact match per sample.

Evaluation data comes from its own seeded stream (``eval.seed`` and the length), so every model of an
experiment is scored on the same samples. Batches are sized by length to bound memory.
"""

from __future__ import annotations

import numpy as np
import torch

from lengen.model import Transformer
from lengen.tasks import Task
from lengen.train import answer_logits, model_ids


def eval_batch_size(seq_len: int, n_heads: int, samples: int) -> int:
    """Keep activations (~B*T) and attention scores (~B*H*T*T floats) bounded as T grows."""
    by_tokens = (1 << 17) // seq_len
    by_scores = (1 << 26) // (n_heads * seq_len * seq_len)
    return max(1, min(samples, by_tokens, by_scores))


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
        n = min(eval_batch_size(seq_len, model.cfg.n_heads, samples), samples - done)
        batch = task.sample(rng, n, length)
        seq_len = batch.tokens.shape[1]
        batch.position_ids = model.prepare_ids(model_ids(batch, ids_kind), gen)
        batch = batch.to(device)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
        if autocast is not None:
            with autocast:
                logits = answer_logits(model, batch, batch.position_ids)
        else:
            logits = answer_logits(model, batch, batch.position_ids)
        hit = logits.argmax(-1) == batch.answers()
        correct += int(hit.sum())
        exact += int(hit.all(dim=1).sum())
        done += n
        answers_per_sample = hit.shape[1]
    return {"accuracy": correct / (done * answers_per_sample), "exact_match": exact / done, "n_eval": done}


def evaluate(model: Transformer, task: Task, lengths: list[int], samples: int, seed: int,
             ids_kind: str = "plain") -> list[dict[str, float]]:
    """One result per length: eval_len, accuracy, exact_match, n_eval."""
    return [{"eval_len": n, **evaluate_length(model, task, n, samples, seed, ids_kind)} for n in lengths]
