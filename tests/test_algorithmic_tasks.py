"""Algorithmic tasks with multi-token answers: layouts, coupled ids and dependency sets, hand-checked.
(Properties shared by every task, and the id copying of every task declaring ``outputs_copy_by_id``,
are in test_task_properties.py.)"""

import numpy as np
import pytest
import torch

from lengen.errors import ConfigError
from lengen.tasks import make_task


def test_copy_and_reverse_by_hand():
    x = np.array([[3, 1, 4]])
    src, deps = make_task("copy").align(x)
    assert src.tolist() == [[0, 1, 2]] and deps == [[[0], [1], [2]]]
    src, deps = make_task("reverse").align(x)
    assert src.tolist() == [[2, 1, 0]] and deps == [[[2], [1], [0]]]
    batch = make_task("reverse").sample(np.random.default_rng(0), 1, 3)
    assert batch.coupled_ids[0].tolist() == [1, 2, 3, 4, 3, 2, 1, 4]


def test_boundary_id_start_puts_separator_and_eos_at_id_zero():
    batch = make_task("copy", boundary_id="start").sample(np.random.default_rng(0), 1, 3)
    assert batch.coupled_ids[0].tolist() == [1, 2, 3, 0, 1, 2, 3, 0]
    with pytest.raises(ConfigError):
        make_task("copy", boundary_id="middle")


def test_sort_is_stable_and_dense_by_hand():
    src, deps = make_task("sort").align(np.array([[5, 2, 5, 0]]))
    assert src.tolist() == [[3, 1, 0, 2]]  # ties keep input order
    assert deps == [[[0, 1, 2, 3]] * 4]


def test_filter_copy_by_hand():
    task = make_task("filter_copy", keep=5)
    src, deps = task.align(np.array([[7, 1, 9, 3, 6, 4]]))
    assert src.tolist() == [[1, 3, 5]]
    # given the previous output's source, the next output depends on the tokens up to the next kept one
    assert deps == [[[0, 1], [2, 3], [4, 5]]]
    batch = task.sample(np.random.default_rng(3), 256, 10)
    assert ((batch.tokens[:, :10] < 5).sum(1) == 5).all()


def test_squeeze_by_hand():
    src, deps = make_task("squeeze").align(np.array([[2, 2, 4, 4, 4, 1]]))
    assert src.tolist() == [[0, 2, 5]]
    assert deps == [[[0], [0, 1, 2], [2, 3, 4, 5]]]
    batch = make_task("squeeze").sample(np.random.default_rng(4), 256, 9)
    x = batch.tokens[:, :9]
    assert ((x[:, 1:] != x[:, :-1]).sum(1) == 4).all()  # ceil(9 / 2) = 5 runs


def test_squeeze_run_fraction_range_varies_runs_per_batch():
    task = make_task("squeeze", run_fraction=0.6, run_fraction_min=0.2)
    rng = np.random.default_rng(5)
    runs = set()
    for _ in range(40):
        batch = task.sample(rng, 16, 20)
        x = batch.tokens[:, :20]
        per_row = (x[:, 1:] != x[:, :-1]).sum(1) + 1
        assert (per_row == per_row[0]).all()  # one fraction per batch: dense answers
        assert torch.equal(task.recompute_answer(batch), batch.answers())
        runs.add(int(per_row[0]))
    assert min(runs) >= 4 and max(runs) <= 12 and len(runs) >= 5
    with pytest.raises(ConfigError, match="run_fraction_min"):
        make_task("squeeze", run_fraction=0.5, run_fraction_min=0.7)


def _number(digits: list[int]) -> int:
    return int("".join(map(str, digits))) if digits else 0


@pytest.mark.parametrize("reverse", [True, False])
def test_addition_layout_ids_and_dependencies(reverse):
    task = make_task("addition", reverse_answer=reverse)
    for seed in range(5):
        batch = task.sample(np.random.default_rng(seed), 4, 6)
        row, ids = batch.tokens[0].tolist(), batch.coupled_ids[0].tolist()
        plus, eq = row.index(10), row.index(11)
        a, b, c = row[:plus], row[plus + 1:eq], row[eq + 1:-1]
        assert row[-1] == 12 and len(c) == 7 and max(len(a), len(b)) == 6
        total = _number(a) + _number(b)
        assert _number(c[::-1] if reverse else c) == total
        # equal significance, equal id: a's last digit, b's last digit and c's ones digit all have id 1
        assert ids[plus - 1] == ids[eq - 1] == 1
        answer_ids = ids[eq + 1:-1]
        assert answer_ids == (list(range(1, 8)) if reverse else list(range(7, 0, -1)))
        # '=' sits one id step before the first answer digit, the same step as between answer digits
        step = answer_ids[1] - answer_ids[0]
        assert answer_ids[0] - ids[eq] == step
        # '+' marks the end of the walk: reversed, it shares the carry digit's id (7); else one step past 1
        assert ids[plus] == (7 if reverse else 0)
        legacy = make_task("addition", reverse_answer=reverse, id_layout="legacy").sample(
            np.random.default_rng(seed), 4, 6).coupled_ids[0].tolist()
        assert (legacy[plus], legacy[eq]) == (0, 7)
        deps = batch.dependencies[0]
        if reverse:  # c_1: a_1, b_1, a_0, b_0 and the answer digit c_0
            assert deps[1].tolist() == [plus - 2, eq - 2, plus - 1, eq - 1, eq + 1]
        else:  # the ones digit comes last and depends on a_0 and b_0 only
            assert sorted(d for d in deps[-2].tolist() if d >= 0) == [plus - 1, eq - 1]
            assert len([d for d in deps[0].tolist() if d >= 0]) == len(a) + len(b)


@pytest.mark.parametrize("pad", [False, True])
def test_local_addition_layout_reads_every_digit_one_id_step_from_where_it_is_predicted(pad):
    # the property the local layout exists for: the token at which answer digit i is predicted has
    # coupled id q, and every token the digit depends on has id q or q + 1, at any length
    for layout, local in (("local", True), ("legacy", False)):
        task = make_task("addition", pad_operands=pad, id_layout=layout)
        for n in (1, 3, 12, 40):
            batch = task.sample(np.random.default_rng(n), 2, n)
            ids = batch.coupled_ids[0]
            steps = []
            for i, at in enumerate(batch.answer_index[0].tolist()[:-1]):  # EOS depends on nothing
                deps = [d for d in batch.dependencies[0, i].tolist() if d >= 0]
                steps += [int(ids[d] - ids[at]) for d in deps]
            assert (set(steps) <= {0, 1}) == local, (layout, n, sorted(set(steps)))
        if local:  # the carry digit is predicted at id n; the '+' marker sits at n + 1
            row = batch.tokens[0].tolist()
            assert int(ids[row.index(10)]) == int(ids[batch.answer_index[0, -2]]) + 1


@pytest.mark.parametrize("reverse", [True, False])
def test_cho_addition_layout_puts_both_operators_one_id_before_the_ones_digit(reverse):
    # Cho et al. 2024's layout: '+' and '=' at the id below the ones digit's (0); with the carry digit
    # first '=' is one id past it (n + 2). Only '+' differs from the local layout, and only with the ones
    # digit first (local gives it the carry digit's id there); with the carry digit first they are equal.
    n = 7
    cho = make_task("addition", pad_operands=True, reverse_answer=reverse, id_layout="cho")
    local = make_task("addition", pad_operands=True, reverse_answer=reverse)
    b, ref = cho.sample(np.random.default_rng(3), 4, n), local.sample(np.random.default_rng(3), 4, n)
    assert torch.equal(b.tokens, ref.tokens) and torch.equal(b.dependencies, ref.dependencies)
    row, ids = b.tokens[0].tolist(), b.coupled_ids[0].tolist()
    plus, eq = row.index(10), row.index(11)
    assert ids[plus] == 0 and ids[eq] == (0 if reverse else n + 2)
    differs = [i for i, (x, y) in enumerate(zip(ids, ref.coupled_ids[0].tolist(), strict=True)) if x != y]
    assert differs == ([plus] if reverse else [])
    assert (cho.recompute_answer(b) == b.answers()).all()


def test_padded_addition_writes_leading_zeros_and_keeps_the_sum():
    plain, padded = make_task("addition"), make_task("addition", pad_operands=True)
    for seed in range(5):
        p = padded.sample(np.random.default_rng(seed), 3, 6)
        q = plain.sample(np.random.default_rng(seed), 3, 6)
        row, ids = p.tokens[0].tolist(), p.coupled_ids[0].tolist()
        plus, eq = row.index(10), row.index(11)
        assert plus == 6 and eq == 13  # both operands have 6 digits
        a, b = row[:plus], row[plus + 1:eq]
        qrow = q.tokens[0].tolist()
        qa, qb = qrow[:qrow.index(10)], qrow[qrow.index(10) + 1:qrow.index(11)]
        assert (_number(a), _number(b)) == (_number(qa), _number(qb))  # same numbers, zeros in front
        assert row[eq + 1:] == qrow[qrow.index(11) + 1:]  # same answer
        assert ids[:plus] == ids[plus + 1:eq] == list(range(6, 0, -1))
        assert (padded.recompute_answer(p) == p.answers()).all()


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError):
        make_task("filter_copy", keep=10)
    with pytest.raises(ConfigError):
        make_task("squeeze", run_fraction=0)
    with pytest.raises(ConfigError):
        make_task("copy", symbols=1)
    with pytest.raises(ConfigError, match="id_layout"):
        make_task("addition", id_layout="middle")
