"""Properties every registered task must have, discovered from the registry (new tasks are covered
without editing this file): answers recomputable from their dependency sets alone, determinism by
seed, consistent shapes and targets, tokens inside the vocabulary, dependencies before the prediction
that uses them, position ids inside the bounds the task declares.

Each task runs with its default parameters; VARIANTS adds parameter settings whose code paths the
defaults do not reach.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from lengen.tasks import IGNORE, TASKS, make_task

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("sparse_parity", {"k": 1}),
    ("sparse_parity", {"k": 3, "window": 5}),
    ("sparse_parity", {"k": 6, "k_min": 2, "noise_vocab": 3}),
    ("planted", {"k": 3, "function": "sum_mod", "alphabet": 5}),
    ("planted", {"k": 4, "function": "majority", "alphabet": 3}),
    ("planted", {"k": 5, "k_min": 3, "function": "first"}),
    ("planted", {"k": 5, "k_min": 3, "function": "last", "window": 7}),
    ("planted", {"k": 3, "function": "lookup", "alphabet": 4}),
    ("offset_parity", {"k": 1}),
    ("offset_parity", {"k": 4, "span": 12}),
    ("offset_parity", {"k": 3, "span": 9, "k_min": 1}),
    ("addition", {"reverse_answer": False}),
    ("addition", {"pad_operands": True}),
    ("addition", {"id_layout": "legacy"}),
    ("binary_addition", {"reverse_answer": False}),
    ("variable_tracking", {"hops": 0}),
    ("modular_arithmetic", {"modulus": 7}),
]


def _with_ground_truth() -> list[tuple[str, dict[str, Any]]]:
    names = [n for n in TASKS.names() if TASKS.get_class(n).has_dependencies]
    return [(n, {}) for n in names] + [v for v in VARIANTS if v[0] in names]


CASES = _with_ground_truth()
IDS = [f"{n}{'-' + '-'.join(f'{k}={v}' for k, v in a.items()) if a else ''}" for n, a in CASES]


def _lengths(task) -> list[int]:
    low = task.min_length()
    return sorted({low, low + 1, max(low, 7), max(low, 16)})


def test_every_registered_task_is_discovered():
    assert {n for n, _ in CASES} == {n for n in TASKS.names() if TASKS.get_class(n).has_dependencies}
    assert len(CASES) >= 25  # the zoo: 6 algorithmic + planted tasks + 18 of issue 18


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_answers_recomputed_from_dependency_sets_alone(name, args):
    task = make_task(name, **args)
    for length in _lengths(task):
        batch = task.sample(np.random.default_rng(length), 64, length)
        assert torch.equal(task.recompute_answer(batch), batch.answers()), (name, length)


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_same_seed_same_batch_other_seed_other_batch(name, args):
    task = make_task(name, **args)
    length = max(task.min_length(), 12)
    a = task.sample(np.random.default_rng(7), 32, length)
    b = task.sample(np.random.default_rng(7), 32, length)
    c = task.sample(np.random.default_rng(8), 32, length)
    for field in ("tokens", "targets", "position_ids", "answer_index", "dependencies", "coupled_ids"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None and y is None) or torch.equal(x, y), field
    assert a.prompt_length == b.prompt_length
    assert not torch.equal(a.tokens, c.tokens)


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_shapes_targets_vocabulary_and_dependency_positions(name, args):
    task = make_task(name, **args)
    for length in _lengths(task):
        batch = task.sample(np.random.default_rng(length + 100), 48, length)
        b, t = batch.tokens.shape
        a = batch.answer_index.shape[1]
        assert b == 48 and batch.targets.shape == (b, t) and batch.position_ids.shape == (b, t)
        assert batch.dependencies.shape[:2] == (b, a)
        assert int(batch.tokens.min()) >= 0 and int(batch.tokens.max()) < task.vocab_size
        # targets: the next token at every answer position, IGNORE elsewhere
        assert int((batch.targets != IGNORE).sum()) == b * a
        assert torch.equal(batch.answers(), torch.gather(batch.tokens, 1, batch.answer_index + 1))
        # answers come after the prompt, in order; multi-token answers end the sequence (generation)
        assert int(batch.answer_index.min()) >= batch.prompt_length - 1
        assert (batch.answer_index.diff(dim=1) > 0).all()
        if task.multi_token:
            assert t == batch.prompt_length + a
        # a dependency is a real position at or before the prediction that uses it, never repeated
        deps = batch.dependencies
        assert ((deps >= 0) | (deps == -1)).all()
        assert ((deps <= batch.answer_index[:, :, None]) | (deps == -1)).all()
        flat = deps.reshape(-1, deps.shape[-1])[:200]
        for row in flat.tolist():
            row = [d for d in row if d >= 0]
            assert len(row) == len(set(row))
        # position ids stay below the bounds the model's tables are sized from
        assert int(batch.position_ids.max()) < task.max_position_id(length)
        if batch.coupled_ids is not None:
            assert batch.coupled_ids.shape == (b, t)
            assert int(batch.coupled_ids.min()) >= 0
            assert int(batch.coupled_ids.max()) < task.max_position_id(length, "coupled")


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_chance_is_the_exact_match_of_guessing(name, args):
    # Task.chance_accuracy: exact match of guessing each sample's answer among its possible values;
    # 0 for multi-token answers (guessing a whole answer is negligible)
    task = make_task(name, **args)
    chance = task.chance_accuracy()
    assert 0 <= chance < 1
    if task.multi_token:
        assert chance == 0
    batch = task.sample(np.random.default_rng(3), 2000, max(task.min_length(), 8))
    if batch.answer_index.shape[1] == 1 and chance > 0:  # one answer: at most 1/chance values occur
        assert len(set(batch.answers()[:, 0].tolist())) <= round(1 / chance)
