"""The idealized sparse learner: our reading of the paper's theory, next to the transformers.

Golowich et al. prove length generalization for an idealized model of attention that picks a k-tuple
of positions and applies an arbitrary function to the tokens there. We do not have the paper's exact
class, so this is **our reading of it** (docs/choices.md), for single-answer tasks:

- a *selector* picks positions by token content and relative position only, never by absolute
  position or length: either "every position whose token is in a content set C, in order" (content
  selectors, C of one or two token ids) or "the positions at offsets o_1 < ... < o_k after the first
  occurrence of an anchor token a, within a window w" (positional selectors);
- the tokens there, together with the query token, index a lookup table (an arbitrary function),
  filled by majority vote on short training samples;
- the hypothesis with the fewest training errors wins (ties: the first in a fixed order: content
  selectors first, then positional ones by increasing span; the search stops at the first that makes
  no training error).

Because a selector never reads the length, a hypothesis that fits the task on short samples gives the
same answer at every length: the learner generalizes exactly when the task's dependence is k-sparse and
expressible this way, and its table has seen every pattern (which takes more samples as k grows).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lengen.config import Cell, eval_settings
from lengen.errors import LengenError
from lengen.rows import cell_rows, with_protocol_columns
from lengen.tasks import Batch, Task


@dataclass(frozen=True)
class Selector:
    content: tuple[int, ...] = ()  # content selector: token ids C
    anchor: int | None = None  # positional selector: the anchor token a ...
    offsets: tuple[int, ...] = ()  # ... and the offsets after it

    def describe(self) -> str:
        if self.anchor is None:
            return f"tokens in {set(self.content)}"
        return f"offsets {list(self.offsets)} after token {self.anchor}"

    def keys(self, prompts: np.ndarray, base: int) -> np.ndarray:
        """The table key of each prompt [N, P] as one integer: the selected tokens (in order) and the last
        (query) token. Content selectors may select a different number of tokens per prompt; the count
        is part of the key. ``base`` exceeds every token id + 1."""
        body, query = prompts[:, :-1], prompts[:, -1].astype(np.int64)
        if self.anchor is None:
            hit = np.isin(body, self.content)
            if hit.sum(1).max(initial=0) * np.log(base) > 60:  # too many to pack into int64: hash the rows
                rows = [hash(tuple(r[m].tolist())) for r, m in zip(body, hit, strict=True)]
                return np.array(rows, dtype=np.int64) * base + query
            # the selected tokens in order, packed as digits >= 1 (so the key never depends on how many
            # columns a batch happens to need), then the query
            order = np.argsort(~hit, axis=1, kind="stable")  # selected positions first, in order
            packed = np.take_along_axis(body + 1, order, 1)
            count = hit.sum(1)
            key = np.zeros(len(prompts), dtype=np.int64)
            for j in range(int(count.max(initial=0))):
                key = np.where(j < count, key * base + packed[:, j], key)
            return key * base + query
        is_anchor = body == self.anchor
        first = np.where(is_anchor.any(1), is_anchor.argmax(1), -1)
        where = first[:, None] + np.array(self.offsets)[None, :]
        valid = (first >= 0) & (where.max(1) < body.shape[1])
        picked = np.take_along_axis(body, np.clip(where, 0, body.shape[1] - 1), 1) + 1
        key = np.zeros(len(prompts), dtype=np.int64)
        for col in np.where(valid[:, None], picked, 0).T:
            key = key * base + col
        return key * base + query


@dataclass
class IdealizedLearner:
    """ERM over selectors x lookup tables (see the module doc)."""

    k_max: int = 8  # positional selectors: up to this many offsets
    window: int = 16  # positional selectors: offsets within 1..window
    selector: Selector | None = None
    table: dict[int, int] | None = None
    train_error: float = float("nan")
    base: int = 0  # key digits: vocabulary + padding + "no token"

    def candidates(self, vocab: int) -> Iterator[Selector]:
        """Content selectors, then positional ones by increasing span (the largest offset), so that the
        most local hypothesis that fits is found first and the search stops there."""
        for size in (1, 2):
            for content in itertools.combinations(range(vocab), size):
                yield Selector(content=content)
        for span in range(1, self.window + 1):
            for anchor in range(vocab):
                for k in range(1, self.k_max + 1):
                    for inner in itertools.combinations(range(1, span), k - 1):
                        yield Selector(anchor=anchor, offsets=(*inner, span))

    @staticmethod
    def _fit_table(keys: np.ndarray, answers: np.ndarray) -> tuple[dict[int, int], int]:
        """Majority answer per key, and the number of training samples the table gets wrong."""
        pairs, counts = np.unique(np.stack([keys, answers]), axis=1, return_counts=True)
        order = np.lexsort((-counts, pairs[0]))  # per key, the most frequent answer first
        pairs, counts = pairs[:, order], counts[order]
        first = np.r_[True, pairs[0, 1:] != pairs[0, :-1]]
        table = dict(zip(pairs[0, first].tolist(), pairs[1, first].tolist(), strict=True))
        return table, int(len(answers) - counts[first].sum())

    def fit(self, prompts: np.ndarray, answers: np.ndarray, vocab: int, search: int = 4000) -> IdealizedLearner:
        """Search the class on the first ``search`` samples, then fill the winner's table from all of them.

        A selector whose table has more keys than half its samples memorises rather than fits, and is
        not admissible (e.g. many offsets after a frequent token make almost every sample its own key).
        """
        best: tuple[int, Selector] | None = None
        self.base = vocab + 2
        head, head_answers = prompts[:search], answers[:search]
        for selector in self.candidates(vocab):
            table, errors = self._fit_table(selector.keys(head, self.base), head_answers)
            if len(table) > len(head_answers) // 2:
                continue
            if best is None or errors < best[0]:
                best = (errors, selector)
            if errors == 0:
                break
        if best is None:
            raise LengenError("idealized: no selector in the class fits the training samples without memorising them")
        self.selector = best[1]
        self.table, errors = self._fit_table(self.selector.keys(prompts, self.base), answers)
        self.train_error = errors / len(answers)
        return self

    def predict(self, prompts: np.ndarray) -> np.ndarray:
        if self.selector is None or self.table is None:
            raise LengenError("the idealized learner must be fitted first")
        return np.array([self.table.get(key, -1) for key in self.selector.keys(prompts, self.base).tolist()])


def prompts_and_answers(task: Task, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Single-answer tasks: the prompt tokens [N, P] (the query last) and the answer token [N]."""
    if batch.answer_index.shape[1] != 1:
        raise LengenError(f"the idealized learner handles single-answer tasks; {task.name} has "
                          f"{batch.answer_index.shape[1]} answer tokens")
    return batch.tokens[:, :batch.prompt_length].numpy(), batch.answers()[:, 0].numpy()


def fit_on_task(task: Task, lengths: list[int], samples: int, seed: int, window: int = 16,
                k_max: int = 8) -> IdealizedLearner:
    """Fit on ``samples`` training samples spread over ``lengths`` (one batch per length, all padded to
    the longest by background tokens would change the task, so each length is fitted as its own rows)."""
    rng = np.random.default_rng([seed, 3])
    learner = IdealizedLearner(k_max=k_max, window=window)
    per = max(1, samples // len(lengths))
    prompts: list[np.ndarray] = []
    answers: list[np.ndarray] = []
    for n in lengths:
        p, a = prompts_and_answers(task, task.sample(rng, per, n))
        prompts.append(p)
        answers.append(a)
    # selectors read content and relative position only, so samples of different lengths are scored
    # together by left-padding every prompt with a token id that no selector can match
    width = max(p.shape[1] for p in prompts)
    pad = task.vocab_size  # outside the vocabulary: never in C, never an anchor
    padded = np.concatenate([np.pad(p, ((0, 0), (width - p.shape[1], 0)), constant_values=pad) for p in prompts])
    return learner.fit(padded, np.concatenate(answers), task.vocab_size)


def accuracy_at(learner: IdealizedLearner, task: Task, length: int, samples: int, seed: int) -> float:
    """Accuracy on the evaluation stream's samples (the transformers' evaluation seeds and lengths)."""
    rng = np.random.default_rng([seed, length])
    prompts, answers = prompts_and_answers(task, task.sample(rng, samples, length))
    return float((learner.predict(prompts) == answers).mean())


def idealized_rows(cells: list[Cell], samples: int) -> list[dict[str, Any]]:
    """Result rows of the idealized learner, scheme ``idealized``, for every task setting and seed of an
    experiment's cells (one learner per (task arguments, seed): the position scheme plays no part),
    scored on the transformers' evaluation samples at the same lengths and settings."""
    rows: list[dict[str, Any]] = []
    seen = set()
    for cell in cells:
        ident = json.dumps([cell.task, cell.task_args, cell.seed, cell.train.min_len, cell.train.max_len], sort_keys=True)
        if ident in seen:
            continue
        seen.add(ident)
        task = cell.build_task()
        k = getattr(task, "k", None)
        if not isinstance(k, int):
            raise LengenError(f"idealized: task {cell.task} has no k; the idealized learner is for k-sparse planted tasks")
        learner = fit_on_task(task, list(range(cell.train.min_len, cell.train.max_len + 1)), samples, cell.seed,
                              window=cell.train.max_len, k_max=k)
        for setting in eval_settings(cell):
            ev = cell.build_eval_task(setting)
            lengths = sorted(set(cell.eval.lengths) | {cell.train.max_len})
            results = [{"eval_len": n, "accuracy": acc, "exact_match": acc, "n_eval": cell.eval.samples}
                       for n in lengths for acc in [accuracy_at(learner, ev, n, cell.eval.samples, cell.eval.seed)]]
            info = {"train_steps": 0, "train_accuracy": round(1 - learner.train_error, 5),
                    "selector": learner.selector.describe() if learner.selector else ""}
            for row in cell_rows(cell, with_protocol_columns(cell, ev, results), info):
                rows.append({**row, **setting, "scheme": "idealized"})
    return rows
