"""The next-token head: logits over the vocabulary, cross-entropy loss, greedy decoding.

A ``nn.Linear`` (state-dict key ``head.weight``, tied to the token embedding with ``tie_embeddings``),
with the loss and decode step of the token prediction beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TokenHead(nn.Linear):
    def __init__(self, d_model: int, vocab_size: int) -> None:
        super().__init__(d_model, vocab_size, bias=False)

    @staticmethod
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of logits [..., vocab] against targets [...]."""
        return F.cross_entropy(logits.flatten(0, -2), targets.flatten())

    @staticmethod
    def decode(logits: torch.Tensor) -> torch.Tensor:
        """Greedy tokens [...] from logits [..., vocab]."""
        return logits.argmax(-1)
