"""Task properties: answers follow from dependency sets, parameters are respected, seeds determine batches."""

import numpy as np
import pytest
import torch

from lengen.errors import ConfigError
from lengen.tasks import IGNORE, TASKS, make_task

CONFIGS = [
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
]


def test_planted_tasks_are_covered():
    assert {"sparse_parity", "planted", "offset_parity"} <= {name for name, _ in CONFIGS}
    assert {"sparse_parity", "planted", "offset_parity"} <= set(TASKS.names())


@pytest.mark.parametrize("name,args", CONFIGS)
@pytest.mark.parametrize("length", [7, 20, 61])
def test_answer_recomputed_from_dependency_set_alone(name, args, length):
    task = make_task(name, **args)
    if length < task.min_length():
        pytest.skip("length below the task's minimum")
    batch = task.sample(np.random.default_rng(1), 512, length)
    assert torch.equal(task.recompute_answer(batch), batch.answers())


@pytest.mark.parametrize("name,args", CONFIGS)
def test_batch_structure(name, args):
    task = make_task(name, **args)
    length = 24
    batch = task.sample(np.random.default_rng(2), 256, length)
    b, t = batch.tokens.shape
    assert b == 256 and batch.targets.shape == (b, t) and batch.position_ids.shape == (b, t)
    assert int(batch.tokens.max()) < task.vocab_size and int(batch.tokens.min()) >= 0
    # targets are the next tokens at the answer positions and IGNORE elsewhere
    scored = batch.targets != IGNORE
    assert int(scored.sum()) == batch.answer_index.numel()
    assert torch.equal(batch.answers(), torch.gather(batch.tokens, 1, batch.answer_index + 1))
    # every dependency is an input position before the prediction that uses it
    deps = batch.dependencies
    valid = deps >= 0
    assert valid.any(dim=-1).all()
    assert (deps[valid] < length).all()
    assert (deps.max(dim=-1).values <= batch.answer_index).all()
    # no repeated positions within a dependency set
    for row in deps[:32, 0]:
        row = row[row >= 0].tolist()
        assert len(row) == len(set(row))


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


@pytest.mark.parametrize("name,args", CONFIGS)
def test_same_seed_same_batch_other_seed_other_batch(name, args):
    task = make_task(name, **args)
    a = task.sample(np.random.default_rng(7), 64, 20)
    b = task.sample(np.random.default_rng(7), 64, 20)
    c = task.sample(np.random.default_rng(8), 64, 20)
    for field in ("tokens", "targets", "answer_index", "dependencies"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.tokens, c.tokens)


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
