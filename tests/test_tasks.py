"""Planted tasks: parameters are respected and bad ones rejected. The properties every task shares
(recomputable answers, determinism, shapes) are in test_task_properties.py, over every registered task."""

import numpy as np
import pytest
import torch

from lengen.errors import ConfigError
from lengen.tasks import make_task


@pytest.mark.parametrize("k,window", [(1, None), (3, None), (3, 3), (4, 6)])
def test_sparse_parity_respects_k_and_window(k, window):
    task = make_task("sparse_parity", k=k, window=window, noise_vocab=5)
    batch = task.sample(np.random.default_rng(3), 1000, 30)
    x = batch.tokens[:, :30]
    planted = x >= 5
    assert (planted.sum(1) == k).all()
    pos = batch.dependencies[:, 0]
    assert torch.equal(torch.sort(pos, 1).values, pos)
    assert (torch.gather(x, 1, pos) >= 5).all()  # the recorded positions hold the planted bits
    if window is not None:
        assert (pos.max(1).values - pos.min(1).values < window).all()
    # over many samples the window start covers the whole sequence
    assert pos.min() == 0 and pos.max() == 29


def test_variable_k_draws_every_value():
    task = make_task("sparse_parity", k=5, k_min=2)
    batch = task.sample(np.random.default_rng(4), 2000, 20)
    ks = (batch.dependencies[:, 0] >= 0).sum(1)
    assert set(ks.tolist()) == {2, 3, 4, 5}
    assert torch.equal(ks, (batch.tokens[:, :20] >= 8).sum(1))


def test_parity_flips_when_one_dependency_flips_and_not_otherwise():
    task = make_task("sparse_parity", k=3)
    batch = task.sample(np.random.default_rng(5), 300, 25)
    answer = batch.answers()
    # change every non-planted token to another noise token: the answer computed from deps is unchanged
    noise = batch.tokens[:, :25] < 8
    batch.tokens[:, :25] = torch.where(noise, (batch.tokens[:, :25] + 3) % 8, batch.tokens[:, :25])
    assert torch.equal(task.recompute_answer(batch), answer)
    # flip one planted bit (symbol token 8 + b becomes 8 + (1 - b)): the parity flips
    first = batch.dependencies[:, 0, :1]
    batch.tokens.scatter_(1, first, 17 - torch.gather(batch.tokens, 1, first))
    assert torch.equal(task.recompute_answer(batch), 17 - answer)


def test_offset_parity_dependencies_are_marker_plus_offsets():
    task = make_task("offset_parity", k=3, span=9)
    assert task.offsets.tolist() == [1, 5, 9]
    batch = task.sample(np.random.default_rng(6), 500, 20)
    deps = batch.dependencies[:, 0]
    marker = deps[:, 0]
    assert (torch.gather(batch.tokens, 1, marker[:, None])[:, 0] == 2).all()
    assert (batch.tokens[:, :20] == 2).sum(1).eq(1).all()
    assert torch.equal(deps[:, 1:] - marker[:, None], torch.tensor([[1, 5, 9]]).expand(500, 3))
    local = make_task("offset_parity", k=3)
    assert local.offsets.tolist() == [1, 2, 3]


def test_offset_parity_curriculum_query_says_how_many_bits():
    task = make_task("offset_parity", k=3, span=9, k_min=1)
    batch = task.sample(np.random.default_rng(9), 600, 20)
    query = batch.tokens[:, 20]
    n_bits = (batch.dependencies[:, 0, 1:] >= 0).sum(1)
    assert torch.equal(query - 2, n_bits) and set(n_bits.tolist()) == {1, 2, 3}
    # the bits used are always the first offsets
    deps = batch.dependencies[:, 0]
    assert torch.equal(deps[:, 1][n_bits >= 1] - deps[:, 0][n_bits >= 1], torch.ones(600, dtype=torch.long))


@pytest.mark.parametrize("name,args,message", [
    ("sparse_parity", {"k": 0}, "k must be >= 1"),
    ("sparse_parity", {"k": 3, "window": 2}, "window (2) is smaller than k (3)"),
    ("sparse_parity", {"k": 3, "k_min": 4}, "k_min (4) must be between 1 and k (3)"),
    ("sparse_parity", {"k": "four"}, "parameter k: expected an integer, got 'four'"),
    ("sparse_parity", {"kk": 2}, "unknown parameter 'kk' (did you mean 'k'?)"),
    ("planted", {"function": "median"}, "unknown function 'median'"),
    ("planted", {"k": 3, "k_min": 2, "function": "lookup"}, "needs a fixed k"),
    ("offset_parity", {"k": 4, "span": 3}, "span (3) is smaller than k (4)"),
    ("no_such_task", {}, "unknown task 'no_such_task'"),
])
def test_bad_parameters_give_one_clear_error(name, args, message):
    with pytest.raises(ConfigError) as err:
        make_task(name, **args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_length_shorter_than_k_is_an_error():
    with pytest.raises(ConfigError, match="too short"):
        make_task("sparse_parity", k=5).sample(np.random.default_rng(0), 4, 3)
