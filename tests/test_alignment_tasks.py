"""The input-dependent-alignment tasks of the PPC suite, checked by hand and by their properties."""

import numpy as np
import pytest
import torch

from lengen.errors import ConfigError
from lengen.tasks import make_task

NEW_TASKS = ["filter_reverse", "squeeze_reverse", "successor_walk", "stable_partition"]


@pytest.mark.parametrize("name", NEW_TASKS)
@pytest.mark.parametrize("boundary", ["start", "end"])
@pytest.mark.parametrize("length", [1, 2, 7, 33])
def test_answer_recomputed_from_dependency_set_alone(name, boundary, length):
    task = make_task(name, boundary_id=boundary)
    batch = task.sample(np.random.default_rng(length), 64, length)
    assert torch.equal(task.recompute_answer(batch), batch.answers())
    deps = batch.dependencies
    assert ((deps < batch.prompt_length - 1) | (deps == -1)).all()  # only input tokens


@pytest.mark.parametrize("name", NEW_TASKS)
def test_outputs_share_the_coupled_id_of_the_input_they_copy_and_runs_are_deterministic(name):
    task = make_task(name)
    n = 15
    batch = task.sample(np.random.default_rng(0), 32, n)
    ids, tokens, p = batch.coupled_ids, batch.tokens, batch.prompt_length
    assert torch.equal(ids[:, :n], torch.arange(1, n + 1).expand(32, n))
    assert torch.equal(torch.gather(tokens, 1, ids[:, p:-1] - 1), tokens[:, p:-1])
    again = task.sample(np.random.default_rng(0), 32, n)
    assert torch.equal(again.tokens, tokens) and torch.equal(again.dependencies, batch.dependencies)
    assert not torch.equal(task.sample(np.random.default_rng(1), 32, n).tokens, tokens)


@pytest.mark.parametrize("name", NEW_TASKS)
def test_gaps_at_evaluation_lengths_exceed_those_of_training(name):
    """The id step between consecutive outputs grows with n: longer inputs show gaps training never had."""
    task = make_task(name)

    def max_gap(n: int) -> int:
        batch = task.sample(np.random.default_rng(n), 256, n)
        out = batch.coupled_ids[:, batch.prompt_length:-1]
        return int((out[:, 1:] - out[:, :-1]).abs().max())

    assert max_gap(80) > max_gap(20)


def test_filter_reverse_by_hand():
    src, deps = make_task("filter_reverse", keep=5).align(np.array([[7, 1, 8, 9, 3, 6]]))
    assert src.tolist() == [[4, 1]] and deps == [[[4, 5], [1, 2, 3]]]


def test_squeeze_reverse_by_hand():
    src, deps = make_task("squeeze_reverse").align(np.array([[2, 2, 5, 5, 5, 1]]))
    assert src.tolist() == [[5, 4, 1]] and deps == [[[5], [4, 5], [1, 2, 3, 4]]]


def test_successor_walk_by_hand():
    task = make_task("successor_walk", symbols=6, colours=3)  # token = colour * 2 + value
    x = np.array([[3, 1, 4, 2, 5, 0, 3]])  # colours 1 0 2 1 2 0 1
    src, deps = task.align(x)
    assert src.tolist() == [[1, 3, 4, 5, 6]]
    assert deps == [[[0, 1], [2, 3], [4], [5], [6]]]
    batch = task.sample(np.random.default_rng(0), 64, 30)
    assert batch.answer_index.shape[1] == 15 + 1  # walk_fraction 0.5, plus EOS
    colours = batch.answers()[:, :-1] // task.values
    assert torch.equal(colours, (torch.arange(15) % 3).expand(64, 15))


def test_stable_partition_by_hand():
    task = make_task("stable_partition", keep=5)
    src, deps = task.align(np.array([[7, 1, 8, 3, 6]]))
    assert src.tolist() == [[1, 3, 0, 2, 4]]
    # the switch (first dropped token) also lists the tokens after the last kept one
    assert deps == [[[0, 1], [2, 3], [0, 4], [1, 2], [3, 4]]]


@pytest.mark.parametrize("length", [2, 5, 40])
def test_stable_partition_with_random_kept_counts(length):
    # kept: random draws 1..n-1 kept tokens per input, so the switch step varies within a length; every
    # answer is still the stable partition of its input and recomputed from its dependency sets
    task = make_task("stable_partition", kept="random")
    batch = task.sample(np.random.default_rng(length), 256, length)
    x = batch.tokens[:, :length]
    counts = (x < task.keep).sum(1)
    assert int(counts.min()) >= 1 and int(counts.max()) <= length - 1
    if length > 2:
        assert len(set(counts.tolist())) > 1
    for row, out in zip(x.tolist(), batch.answers()[:, :-1].tolist(), strict=True):
        assert out == [t for t in row if t < task.keep] + [t for t in row if t >= task.keep]
    assert torch.equal(task.recompute_answer(batch), batch.answers())
    fixed = make_task("stable_partition").sample(np.random.default_rng(length), 256, length)
    assert len(set((fixed.tokens[:, :length] < task.keep).sum(1).tolist())) == 1


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="kept"):
        make_task("stable_partition", kept="some")
    with pytest.raises(ConfigError, match="colours"):
        make_task("successor_walk", symbols=10, colours=3)
    with pytest.raises(ConfigError, match="walk_fraction"):
        make_task("successor_walk", walk_fraction=0)
