"""Held-out checks during training: the *target* distribution decides when to stop and what to keep.

A cell's target distribution is its evaluation task (``eval.task_args``) at every setting of
``eval.grid``, at the longest training length. Reading the training mixture instead lets a stop fire
while the setting the experiment is about is still unlearned: a model trained on k = 1..8 reaches 99%
on the mixture long before it has learned k = 8 (issue 13). So, every ``check_every`` steps:

- the model is scored on fixed held-out samples of each target setting at ``train.max_len``
  (teacher-forced exact match: every answer token, and every position id an output head predicts, right;
  a teacher-forced exact sample is exactly what greedy decoding emits, so this equals the generation
  exact match without decoding);
- training stops once the *worst* setting reaches ``train.target_accuracy`` (``stop_on: target``);
- with ``select: best`` the weights with the best mean score over the settings are kept (the worst
  setting alone would prefer an untrained model to one that learned every setting but one);
- every ``curve_every`` steps the same is measured at ``curve_multiples`` x the training length, which
  gives length generalization over the course of training (``metrics.csv``).

The held-out samples come from their own seeded streams (never the training or evaluation streams)
and are drawn once, so a resumed run scores exactly the samples an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lengen.answers import answer_outputs, id_predictions
from lengen.config import Cell, eval_settings
from lengen.evaluate import eval_batch_size
from lengen.position_ids import prepare_position_ids
from lengen.tasks import Batch, Task


def setting_label(setting: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in setting.items()) or "target"


@dataclass
class HeldOut:
    setting: str
    length: int
    batches: list[Batch]  # fixed samples, ids already prepared


def teacher_exact(model: Any, batch: Batch) -> torch.Tensor:
    """Per-sample teacher-forced exact match [B] (bool): every answer token right, and with an
    id-predicting output head every next-position id right except after the last answer token (EOS is never fed back)."""
    ids = batch.position_ids
    out = answer_outputs(model, batch, ids)
    hit = (model.head.decode(out.logits) == batch.answers()).all(dim=1)
    predicted = id_predictions(model, batch, ids, out)
    if predicted is not None:
        hit &= (predicted[0][:, :-1] == predicted[1][:, :-1]).all(dim=1)
    return hit


class TargetMonitor:
    """Fixed held-out samples of a cell's target settings, scored on demand."""

    def __init__(self, cell: Cell, model: Any, device: torch.device) -> None:
        self.cell, self.device = cell, device
        cfg = cell.train
        self.settings = eval_settings(cell)
        tasks = [cell.build_eval_task(s) for s in self.settings]
        self.stop_sets = [self._held_out(t, s, cfg.max_len, cfg.stop_samples, model) for t, s in
                          zip(tasks, self.settings, strict=True)]
        limit = model.positions.max_position()  # curves stop where a scheme's id table ends
        self.curve_sets = [self._held_out(t, s, m * cfg.max_len, cfg.curve_samples, model)
                           for m in cfg.curve_multiples for t, s in zip(tasks, self.settings, strict=True)
                           if limit is None or t.max_position_id(m * cfg.max_len, cfg.ids) <= limit]

    def _held_out(self, task: Task, setting: dict[str, Any], length: int, samples: int, model: Any) -> HeldOut:
        index = self.settings.index(setting)
        # streams of their own: [eval seed, length, 2 (held-out), setting]; evaluation uses [seed, length]
        rng = np.random.default_rng([self.cell.eval.seed, length, 2, index])
        gen = torch.Generator().manual_seed(self.cell.eval.seed * 7_919 + length * 31 + index)
        batches, done = [], 0
        while done < samples:
            n = min(eval_batch_size(2 * length + 8, model.cfg.n_heads, samples, model.cfg.vocab_size), samples - done)
            batch = task.sample(rng, n, length)
            batch.position_ids = prepare_position_ids(model, batch, self.cell.train.ids, gen)
            batches.append(batch.to(self.device))
            done += n
        return HeldOut(setting_label(setting), length, batches)

    @torch.no_grad()
    def _score(self, model: Any, held: HeldOut) -> float:
        was_training = model.training
        model.eval()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else \
            contextlib.nullcontext()
        hits = total = 0
        with autocast:
            for batch in held.batches:
                hits += int(teacher_exact(model, batch).sum())
                total += batch.tokens.shape[0]
        model.train(was_training)
        return hits / max(1, total)

    def target(self, model: Any) -> dict[str, float]:
        """{setting: held-out exact match at the longest training length}."""
        return {h.setting: self._score(model, h) for h in self.stop_sets}

    def curves(self, model: Any) -> list[tuple[str, int, float]]:
        """[(setting, length, held-out exact match)] at the curve lengths."""
        return [(h.setting, h.length, self._score(model, h)) for h in self.curve_sets]
