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

from lengen.errors import LengenError
from lengen.evaluate import eval_batch_size
from lengen.model import Transformer
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


@torch.no_grad()
def position_loss(model: Transformer, task: Task, context: int, windows: int, seed: int = 12345,
                  device: torch.device | None = None) -> PositionLoss:
    """Mean next-token loss at every position of ``windows`` windows of ``context`` tokens of ``task``.

    ``task`` is a text task (normally ``split: validation``); its samples score every next token.
    The windows come from their own seeded stream, so every model is scored on the same tokens.
    """
    if context < 2:
        raise LengenError(f"position loss needs a context of at least 2 tokens, got {context}")
    model.eval()
    device = device or next(model.parameters()).device
    rng = np.random.default_rng([seed, context])
    gen = torch.Generator().manual_seed(seed * 1_000_003 + context)
    total = torch.zeros(context, dtype=torch.float64)
    done = 0
    while done < windows:
        n = min(eval_batch_size(context, model.cfg.n_heads, windows), windows - done)
        batch = task.sample(rng, n, context)
        if batch.answer_index.shape[1] != context - 1:
            raise LengenError(f"task {task.name} does not score every next token; position loss needs text")
        ids = model.prepare_ids(batch.position_ids, gen).to(device)
        hidden = model.hidden(batch.tokens.to(device), ids)[:, :-1]  # [n, context-1, d]
        targets = batch.tokens[:, 1:].to(device)
        rows = max(1, LOGIT_FLOATS // (model.cfg.vocab_size * (context - 1)))
        for i in range(0, n, rows):
            logits = model.head(hidden[i:i + rows]).float()
            loss = F.cross_entropy(logits.transpose(1, 2), targets[i:i + rows], reduction="none")
            total[1:] += loss.sum(0).double().cpu()
        done += n
    mean = (total / done).numpy()
    mean[0] = np.nan
    return PositionLoss(context=context, loss=mean, windows=done)


def run_position_loss(run_dir: str | Path, context: int, windows: int, seed: int = 12345,
                      edges: list[int] | None = None) -> list[dict[str, Any]]:
    """Tidy rows (scheme, seed, PoSE target, position range, loss, tokens) for every finished cell of a
    ``lengen run`` folder of text models, scored on each cell's evaluation task (``eval.task_args``)."""
    from lengen.checkpoint import load_model
    from lengen.config import Cell

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
