"""Shared layouts of the task zoo (Delétang et al. 2023 tasks and long-context probes).

``classification_batch``: one answer token after the input, ``x_1 .. x_n QUERY ANSWER``. The answer is
predicted at the QUERY position; its dependency set lists input positions only.
"""

from __future__ import annotations

import numpy as np
import torch

from lengen.tasks.base import Batch, make_batch


def classification_batch(inputs: np.ndarray, answers: np.ndarray, dependencies: np.ndarray,
                         query: int, coupled_ids: np.ndarray | None = None) -> Batch:
    """``inputs`` [B, n], ``answers`` [B] (token ids), ``dependencies`` [B, D] (-1 padded)."""
    b, n = inputs.shape
    tokens = np.concatenate([inputs, np.full((b, 1), query), answers.reshape(b, 1)], axis=1)
    return make_batch(tokens, np.full((b, 1), n), dependencies.reshape(b, 1, -1), prompt_length=n + 1,
                      coupled_ids=coupled_ids)


def dependency_tokens(batch: Batch, answer: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens at answer ``answer``'s dependency set, [B, D], and the validity mask (-1 padding)."""
    deps = batch.dependencies[:, answer, :]
    return torch.gather(batch.tokens, 1, deps.clamp(min=0)), deps >= 0


def all_positions(batch: int, n: int) -> np.ndarray:
    """Every input position as the dependency set of each sample, [B, n] (the dense case)."""
    return np.broadcast_to(np.arange(n), (batch, n))


def answer_batch(prompt: np.ndarray, answer: np.ndarray, dependencies: np.ndarray,
                 coupled_ids: np.ndarray | None = None) -> Batch:
    """A multi-token answer that ends the sequence: ``prompt`` [B, p] then ``answer`` [B, m].

    Answer token j is predicted at index p - 1 + j; ``dependencies`` is [B, m, D] (-1 padded).
    """
    b, p = prompt.shape
    m = answer.shape[1]
    tokens = np.concatenate([prompt, answer], axis=1)
    index = np.broadcast_to(np.arange(p - 1, p - 1 + m), (b, m))
    return make_batch(tokens, index, dependencies, prompt_length=p, coupled_ids=coupled_ids)


def bits_msb_first(rng: np.random.Generator, batch: int, n: int) -> np.ndarray:
    """Random n-bit numbers written most significant bit first, without a leading zero (n > 1)."""
    x = rng.integers(0, 2, size=(batch, n))
    if n > 1:
        x[:, 0] = 1
    return x


def to_int(bits: list[int]) -> int:
    """Bits, most significant first, as a Python integer (any size)."""
    return int("".join(map(str, bits)), 2) if bits else 0
