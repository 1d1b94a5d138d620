"""Properties every registered task must have, discovered from the registry (new tasks are covered
without editing this file): answers recomputable from their dependency sets alone, determinism by
seed, consistent shapes and targets, tokens inside the vocabulary, dependencies before the prediction
that uses them, position ids inside the bounds the task declares; for tasks declaring
``outputs_copy_by_id``, outputs that copy the input token their coupled id points at. The checks
themselves are in properties.py, shared with test_plugins.py.

Each task runs with its default parameters; VARIANTS adds parameter settings whose code paths the
defaults do not reach.
"""

from __future__ import annotations

from typing import Any

import pytest
from properties import (
    check_chance,
    check_outputs_copy_by_id,
    check_recomputable,
    check_seeded,
    check_shapes,
)

from lengen.tasks import TASKS, make_task

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
    ("addition", {"id_layout": "cho", "pad_operands": True}),
    ("stable_partition", {"kept": "random"}),
    ("binary_addition", {"reverse_answer": False}),
    ("variable_tracking", {"hops": 0}),
    ("modular_arithmetic", {"modulus": 7}),
]


def _with_ground_truth() -> list[tuple[str, dict[str, Any]]]:
    names = [n for n in TASKS.names() if TASKS.get_class(n).has_dependencies]
    return [(n, {}) for n in names] + [v for v in VARIANTS if v[0] in names]


CASES = _with_ground_truth()
IDS = [f"{n}{'-' + '-'.join(f'{k}={v}' for k, v in a.items()) if a else ''}" for n, a in CASES]


def test_every_registered_task_is_discovered():
    assert {n for n, _ in CASES} == {n for n in TASKS.names() if TASKS.get_class(n).has_dependencies}
    assert len(CASES) >= 25  # the zoo: 6 algorithmic + planted tasks + 18 of issue 18


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_answers_recomputed_from_dependency_sets_alone(name, args):
    check_recomputable(make_task(name, **args))


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_same_seed_same_batch_other_seed_other_batch(name, args):
    check_seeded(make_task(name, **args))


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_shapes_targets_vocabulary_and_dependency_positions(name, args):
    check_shapes(make_task(name, **args))


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_chance_is_the_exact_match_of_guessing(name, args):
    check_chance(make_task(name, **args))


COPYING = [n for n in TASKS.names() if TASKS.get_class(n).outputs_copy_by_id]


def test_the_seq2seq_tasks_declare_that_outputs_copy_by_id():
    assert {"copy", "reverse", "sort", "filter_copy", "squeeze"} <= set(COPYING)


@pytest.mark.parametrize("name", COPYING)
def test_outputs_share_the_coupled_id_of_the_input_they_copy(name):
    check_outputs_copy_by_id(make_task(name))
