"""Per-position loss on held-out text at contexts far beyond the training context.

The model reads validation windows of ``context`` tokens with plain ids 0..context-1 (through its
scheme's evaluation-mode ``prepare_ids``; PoSE is never applied here) and every next token is
scored. Position p is the index of the predicted token: it was predicted from p tokens of context.
Losses are averaged over windows per position, then over position ranges (by default
[1, L), [L, 2L), [2L, 4L), [4L, 8L) for a training context L), so "loss beyond the training context"
is the rows whose range starts at or after L.

    python -m lengen.text.length_eval runs/language-quick --context 512 --windows 64
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lengen.checkpoint import load_model
from lengen.config import Cell
from lengen.errors import LengenError
from lengen.evaluate import eval_batch_size
from lengen.model import Transformer
from lengen.position_ids import prepare_position_ids
from lengen.tasks import Task

LOGIT_FLOATS = 1 << 24  # logits materialised at once (64 MiB): bounds memory whatever the vocabulary


@dataclass
class PositionLoss:
    context: int
    loss: np.ndarray  # [context]: mean loss of the token at each position (position 0 is never predicted: nan)
    windows: int  # windows scored (each position has this many tokens)

    def ranges(self, edges: list[int]) -> list[dict[str, Any]]:
        """Mean loss and token count over positions [edges[i], edges[i+1]), clipped to the context."""
        rows = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            lo, hi = max(lo, 1), min(hi, self.context)
            if lo >= hi:
                continue
            rows.append({"start": lo, "end": hi, "loss": float(self.loss[lo:hi].mean()),
                         "tokens": (hi - lo) * self.windows})
        return rows


def default_edges(train_context: int, context: int) -> list[int]:
    """1, L, 2L, 4L, ... up to the context (each range twice as long as the one before)."""
    edges = [1, train_context]
    while edges[-1] < context:
        edges.append(min(2 * edges[-1], context))
    return edges


def _eval_ids(model: Transformer, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    ids = torch.arange(length).expand(batch, length)
    return prepare_position_ids(model, ids, generator=generator)


def _token_loss(model: Transformer, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every row of ``hidden [N, T, d]`` against ``targets [N, T]``, in slices of rows
    so that at most ``LOGIT_FLOATS`` logits exist at once, whatever the vocabulary."""
    n, t = targets.shape
    rows = max(1, LOGIT_FLOATS // (model.cfg.vocab_size * t))
    out = [F.cross_entropy(model.head(hidden[i:i + rows]).float().transpose(1, 2), targets[i:i + rows],
                           reduction="none") for i in range(0, n, rows)]
    return torch.cat(out)


@torch.no_grad()
def token_losses(model: Transformer, windows: torch.Tensor, seed: int = 12345) -> torch.Tensor:
    """Next-token loss (nats) of every token of ``windows [W, C]`` read with its whole window as context:
    ``out[w, p - 1]`` is the loss of token p predicted from tokens 0..p-1, so ``out`` is [W, C-1]."""
    model.eval()
    device = next(model.parameters()).device
    w, c = windows.shape
    gen = torch.Generator().manual_seed(seed * 1_000_003 + c)
    out = []
    step = eval_batch_size(c, model.cfg.n_heads, w)
    for i in range(0, w, step):
        x = windows[i:i + step].to(device)
        hidden = model.hidden(x, _eval_ids(model, x.shape[0], c, gen).to(device))[:, :-1]
        out.append(_token_loss(model, hidden, x[:, 1:]).cpu())
    return torch.cat(out)


@torch.no_grad()
def near_context_losses(model: Transformer, windows: torch.Tensor, near: int, seed: int = 12345) -> torch.Tensor:
    """Like ``token_losses``, but token p is predicted from its last ``min(p, near)`` tokens only.

    With ``near`` = training context - 1 every prediction reads exactly as much context as the longest
    seen in training: the in-distribution loss of the same tokens, against which the loss at a longer
    context is compared. Costs one ``near + 1``-token forward pass per token beyond ``near``.
    """
    if near < 1:
        raise LengenError(f"the near context must hold at least 1 token, got {near}")
    model.eval()
    device = next(model.parameters()).device
    w, c = windows.shape
    out = token_losses(model, windows[:, : near + 1], seed)  # tokens 1..near read their whole window
    if c <= near + 1:
        return out
    gen = torch.Generator().manual_seed(seed * 1_000_003 + near + 1)
    # row (w, i): tokens i .. i+near of window w, scoring token i+near from the `near` tokens before it
    rows = windows.unfold(1, near + 1, 1)[:, 1:].reshape(-1, near + 1)
    losses = []
    step = eval_batch_size(near + 1, model.cfg.n_heads, 1 << 30)
    for i in range(0, rows.shape[0], step):
        x = rows[i:i + step].to(device)
        hidden = model.hidden(x[:, :-1], _eval_ids(model, x.shape[0], near, gen).to(device))[:, -1:]
        losses.append(_token_loss(model, hidden, x[:, -1:])[:, 0].cpu())
    return torch.cat([out, torch.cat(losses).view(w, c - near - 1)], dim=1)


def validation_windows(task: Task, context: int, windows: int, seed: int = 12345) -> torch.Tensor:
    """``windows`` windows of ``context`` tokens from a text task (normally ``split: validation``), drawn
    from their own seeded stream so that every model is scored on the same tokens."""
    if context < 2:
        raise LengenError(f"position loss needs a context of at least 2 tokens, got {context}")
    batch = task.sample(np.random.default_rng([seed, context]), windows, context)
    if batch.answer_index.shape[1] != context - 1:
        raise LengenError(f"task {task.name} does not score every next token; position loss needs text")
    return batch.tokens


def position_loss(model: Transformer, task: Task, context: int, windows: int, seed: int = 12345,
                  device: torch.device | None = None) -> PositionLoss:
    """Mean next-token loss at every position of ``windows`` windows of ``context`` tokens of ``task``
    (a text task, normally ``split: validation``; see ``validation_windows``)."""
    if device is not None:
        model.to(device)
    losses = token_losses(model, validation_windows(task, context, windows, seed), seed)
    mean = np.concatenate([[np.nan], losses.double().mean(0).numpy()])
    return PositionLoss(context=context, loss=mean, windows=windows)


def run_position_loss(run_dir: str | Path, context: int, windows: int, seed: int = 12345,
                      edges: list[int] | None = None) -> list[dict[str, Any]]:
    """Tidy rows (scheme, seed, PoSE target, position range, loss, tokens) for every finished cell of a
    ``lengen run`` folder of text models, scored on each cell's evaluation task (``eval.task_args``)."""

    cells = sorted(Path(run_dir).glob("cells/*/cell.json"))
    if not cells:
        raise LengenError(f"{run_dir}: no cells (expected the output folder of lengen run)")
    out = []
    for path in cells:
        cell = Cell.from_dict(json.loads(path.read_text(encoding="utf-8")))
        if cell.task != "text":
            raise LengenError(f"{path}: task {cell.task} is not text")
        model = load_model(path.parent).model
        result = position_loss(model, cell.build_eval_task(), context, windows, seed)
        for row in result.ranges(edges or default_edges(cell.train.max_len, context)):
            out.append({"scheme": cell.scheme.label, "seed": cell.seed, "train_context": cell.train.max_len,
                        "pose_target_length": cell.train.pose_target_length, **row})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Per-position validation loss of the text models of a lengen run.")
    parser.add_argument("run_dir")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for r in run_position_loss(args.run_dir, args.context, args.windows, args.seed):
        print(f"{r['scheme']:14s} seed {r['seed']}  positions [{r['start']:4d}, {r['end']:4d})  "
              f"loss {r['loss']:.3f}  tokens {r['tokens']}")


if __name__ == "__main__":
    main()
