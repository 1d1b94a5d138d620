"""stack_manipulation (Delétang et al. 2023, deterministic context-free): run stack actions, print the stack.

Input: an initial stack of 0/1 (bottom to top, 1..n-1 symbols, drawn per sample) followed by actions
POP, PUSH 0, PUSH 1 (n tokens in all; POP on an empty stack does nothing). Output: the final stack top
to bottom, then EOS, padded with PAD to n + 1 tokens (Delétang et al. pad with zeros and mask them in
their accuracy; here the padding is its own token and is scored, which makes per-token accuracy
easier than theirs: use exact match to compare). Which symbol ends up at depth j depends on every
action, so each output token's dependency set is the whole input (dense).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.tasks.base import Batch, Task, register_task
from lengen.tasks.layouts import all_positions, answer_batch

POP, PUSH0, PUSH1, SEP, EOS, PAD = 2, 3, 4, 5, 6, 7


def final_stack(tokens: list[int], stack_size: int) -> list[int]:
    """The stack (top first) after running the actions that follow the first ``stack_size`` tokens."""
    stack = list(tokens[:stack_size])
    for action in tokens[stack_size:]:
        if action == POP:
            if stack:
                stack.pop()
        else:
            stack.append(action - PUSH0)
    return stack[::-1]


def _output(stack: list[int], n: int) -> list[int]:
    return [*stack, EOS] + [PAD] * (n - len(stack))


@register_task("stack_manipulation")
@dataclass
class StackManipulation(Task):
    """stack (bottom..top) then POP / PUSH 0 / PUSH 1 actions | final stack top..bottom $ _ _ ..."""

    @property
    def vocab_size(self) -> int:
        return 8

    def token_names(self) -> list[str]:
        return ["0", "1", "pop", "push0", "push1", "|", "$", "_"]

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return 2 * length + 4

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        n = length
        sizes = rng.integers(1, n, size=batch) if n > 1 else np.ones(batch, dtype=np.int64)
        stacks = rng.integers(0, 2, size=(batch, n))
        actions = rng.integers(POP, PUSH1 + 1, size=(batch, n))
        x = np.where(np.arange(n)[None, :] < sizes[:, None], stacks, actions)
        out = np.array([_output(final_stack(row, int(s)), n) for row, s in zip(x.tolist(), sizes.tolist(),
                                                                               strict=True)])
        prompt = np.concatenate([x, np.full((batch, 1), SEP)], axis=1)
        deps = np.broadcast_to(all_positions(batch, n)[:, None, :], (batch, n + 1, n))
        return answer_batch(prompt, out, deps)

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        deps = batch.dependencies[:, 0, :]  # every answer token depends on the whole input
        rows = torch.gather(batch.tokens, 1, deps.clamp(min=0)).tolist()
        out = []
        for row in rows:
            size = next((i for i, t in enumerate(row) if t >= POP), len(row))  # the stack ends at the first action
            out.append(_output(final_stack(row, size), len(row)))
        return torch.tensor(out, dtype=torch.long)
