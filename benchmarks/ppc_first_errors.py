"""Where does a PPC model's decoding first go wrong? (issue 15: diagnosing long-length failures)

    python benchmarks/ppc_first_errors.py CELL_DIR --lengths 20 80 [--samples 256] [--seed S] [--task-args K=V ...]

Greedy decoding with the model's own predicted ids, as `lengen run` scores it. For every sample whose
answer is not exact, the first answer step where the emitted id or token differs from the task's is
described: the step as a share of the answer, whether the true next source lies ahead of or behind the
previous one in id space and how far, where the model pointed instead, and whether the token went wrong
with the right id. The summary groups the first errors by the true move (ahead / behind, near / far), so
a failure confined to one kind of step (e.g. the one backward jump of stable_partition) shows up as one
row. ``--task-args`` scores the cell on a variant of its evaluation task (e.g. ``kept=fixed`` for a
stable_partition model trained with random kept counts); values are read as YAML scalars.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np
import torch

from lengen.checkpoint import load_model
from lengen.cli.arguments import parse_assignments
from lengen.errors import ConfigError, LengenError
from lengen.evaluate import evaluate_at, generation_scorer
from lengen.metrics import DEFAULT_METRICS, Scored
from lengen.tasks import Batch


def first_errors(cell_dir: str, length: int, samples: int, seed: int | None = None,
                 task_args: dict[str, Any] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """(samples scored, one description per sample with a wrong token or id). The scoring is `lengen run`'s
    own (``evaluate_at`` with the generation scorer), with the cell's evaluation seed unless ``seed`` and
    its evaluation task with ``task_args`` applied on top; this only watches what each batch decoded."""
    loaded = load_model(cell_dir)
    model, cell = loaded.model, loaded.cell
    run_scorer = generation_scorer(model, predict_ids=True, restrict_ids=cell.eval.restrict_ids)
    errors: list[dict[str, Any]] = []

    def watch(batch: Batch, ids: torch.Tensor) -> Scored:
        scored = run_scorer(batch, ids)
        assert scored.ids is not None and scored.true_ids is not None
        prompt_ids = ids[:, :batch.prompt_length]
        for i in range(len(scored.tokens)):
            bad_tok = (scored.tokens[i] != scored.answers[i]).nonzero().flatten()
            bad_id = (scored.ids[i] != scored.true_ids[i]).nonzero().flatten()  # EOS's id is never fed back
            first = min([int(x[0]) for x in (bad_tok, bad_id) if len(x)], default=None)
            if first is None:
                continue
            prev = int(prompt_ids[i, -1]) if first == 0 else int(scored.true_ids[i, first - 1])
            has_id = first < scored.true_ids.shape[1]
            true_next = int(scored.true_ids[i, first]) if has_id else prev
            got = int(scored.ids[i, first]) if has_id else prev
            errors.append({"step": first, "share": first / scored.answers.shape[1], "move": true_next - prev,
                           "got_move": got - prev, "id_right": got == true_next,
                           "token_right": bool(scored.tokens[i, first] == scored.answers[i, first]),
                           "answer_exact": len(bad_tok) == 0})
        return scored

    seed = cell.eval.seed if seed is None else seed
    result = evaluate_at(model, cell.build_eval_task(task_args), length, samples, seed, "coupled", watch, DEFAULT_METRICS,
                         2 * length + 8)
    return int(result["n_eval"]), errors


def describe(length: int, samples: int, errors: list[dict[str, Any]]) -> None:
    exact = samples - sum(not e["answer_exact"] for e in errors)
    print(f"n = {length}: {exact} of {samples} answers exact (lengen run's exact_match); {len(errors)} with a wrong "
          f"token or id, first errors below")
    if not errors:
        return

    def kind(move: int) -> str:
        side = "ahead" if move > 0 else ("behind" if move < 0 else "same id")
        return f"{side} {'1-2' if abs(move) <= 2 else ('3-10' if abs(move) <= 10 else '>10')}"
    steps = Counter(int(e["step"]) for e in errors).most_common(3)
    print(f"  most common first-error steps (0 = first answer token): {dict(steps)}")
    by = Counter(kind(int(e["move"])) for e in errors)
    for k, c in by.most_common():
        sel = [e for e in errors if kind(int(e["move"])) == k]
        id_ok = sum(bool(e["id_right"]) for e in sel)
        got = Counter(kind(int(e["got_move"])) for e in sel if not e["id_right"])
        share = np.median([float(e["share"]) for e in sel])
        print(f"  true move {k:>13}: {c:4d} first errors (median at {share:.0%} of the answer); id right but token "
              f"wrong: {id_ok}; pointed instead: {dict(got.most_common(3))}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cell")
    p.add_argument("--lengths", type=int, nargs="+", default=[20, 80])
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--seed", type=int, help="evaluation seed (default: the cell's, as lengen run scored it)")
    p.add_argument("--task-args", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override arguments of the cell's evaluation task")
    a = p.parse_args()
    try:
        overrides = parse_assignments(a.task_args, "--task-args")
    except ConfigError as e:
        p.error(str(e))
    torch.set_num_threads(1)
    for n in a.lengths:
        try:
            scored = first_errors(a.cell, n, a.samples, a.seed, overrides)
        except LengenError as e:  # a missing or foreign cell folder, a bad task argument: one line
            p.exit(2, f"{p.prog}: error: {e}\n")
        describe(n, *scored)


if __name__ == "__main__":
    main()
