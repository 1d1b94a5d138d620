"""The counts pointer (``pointer_distance: counts``): scores defined at every id distance, and learned
gaps that extrapolate."""

import numpy as np
import pytest
import torch

from lengen.answers import answer_loss, answer_outputs
from lengen.errors import ConfigError
from lengen.evaluate import generation_inputs
from lengen.generate import generate
from lengen.heads.pointer import CountPointer, count_features
from lengen.heads.ppc import next_position_targets
from lengen.model import ModelConfig, Transformer
from lengen.tasks import make_task


def _model(seed: int = 0, d_model: int = 32, keys: str = "embed") -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=12, d_model=d_model, n_layers=2, n_heads=2, position="t5_bias",
                      position_args={"num_buckets": 8, "max_distance": 8}, position_head=True,
                      position_head_kind="pointer", pointer_distance="counts", pointer_keys=keys)
    return Transformer(cfg).eval()


def _saturated(raw: list[float]) -> torch.Tensor:
    return 1 - torch.exp(-torch.tensor(raw))


def test_count_features_by_hand():
    gate = torch.tensor([[[[1.0, 0.0, 1.0, 1.0, 0.5, 0.0]]]])  # [B=1, A=1, G=1, P=6]
    prompt_ids = torch.tensor([[1, 2, 3, 4, 5, 0]])  # in any order: the separator's id 0 comes last
    ahead, behind, before, after = count_features(gate, torch.tensor([[3]]), prompt_ids)[0, 0, 0]
    # candidate weight by id: 0 -> 0, 1 -> 1, 2 -> 0, 3 -> 1, 4 -> 1, 5 -> 0.5; the row sits at id 3;
    # a count c is returned saturated as 1 - exp(-c)
    assert torch.allclose(ahead, _saturated([0, 0, 0, 0, 1, 0]))  # between id 3 and id 5: the token at id 4
    assert torch.allclose(behind, _saturated([0, 0, 0, 0, 0, 1]))  # between 0 and 3: ids 1 (1) and 2 (0)
    assert torch.allclose(before, _saturated([0, 1, 1, 2, 3, 0]))
    assert torch.allclose(after, _saturated([2.5, 2.5, 1.5, 0.5, 0, 3.5]))


def test_tokens_sharing_an_id_count_together():
    gate = torch.full((1, 1, 1, 5), 0.25)
    ahead = count_features(gate, torch.tensor([[0]]), torch.tensor([[2, 1, 2, 3, 1]]))[0, 0, 0, 0]
    assert torch.allclose(ahead, _saturated([0.5, 0, 0.5, 1, 0]))  # id 2: the two id-1 tokens; id 3: four


def test_scores_beyond_training_distances_come_from_the_same_few_parameters():
    torch.manual_seed(0)  # before the head is built: its initialisation must not depend on the tests run before
    head = CountPointer(16, gates=2)
    names = {n: p.shape for n, p in head.named_parameters()}
    # nothing is indexed by a distance: four matrices of the model width, one row per feature
    assert names == {"query.weight": (16, 16), "key.weight": (16, 16), "gate_key.weight": (32, 16),
                     "feature.weight": (13, 16)}
    torch.manual_seed(0)
    n = 4000
    rows, row_ids = torch.randn(1, 1, 16), torch.tensor([[0]])
    memory = torch.randn(1, 1, 16).expand(1, n, 16)  # every prompt token alike: only the distance differs
    scores = head(rows, row_ids, memory, torch.arange(1, n + 1)[None])[0, 0]
    assert torch.isfinite(scores).all()
    # bounded features: once a few candidates lie between, every farther distance gets the same score,
    # at 100 as at 3900 (the last tokens differ only by having fewer tokens after them)
    far = scores[99:n - 100]
    assert (far.max() - far.min()).abs() < 1e-5
    near = scores[1:99]  # distances 2..99 (distance 1 has its own indicator)
    steps = near[1:] - near[:-1]
    assert (steps >= -1e-6).all() or (steps <= 1e-6).all()  # and the approach to it is monotone
    assert scores.abs().max() < 1e3
    # a score at distance 3000 uses no parameter that a score at distance 3 does not
    grads = []
    for d in (3, 3000):
        head.zero_grad()
        head(rows, row_ids, memory, torch.arange(1, n + 1)[None])[0, 0, d - 1].backward()
        grads.append({name for name, p in head.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0})
    assert grads[1] <= grads[0] == set(names)


def test_counts_pointer_is_validated():
    with pytest.raises(ConfigError, match="pointer_distance"):
        ModelConfig(position_head=True, position_head_kind="pointer", pointer_distance="table").validate()
    with pytest.raises(ConfigError, match="pointer_gates"):
        ModelConfig(pointer_gates=0).validate()


@pytest.mark.parametrize("task", ["filter_copy", "stable_partition"])
def test_cached_counts_pointer_generation_returns_the_same_tokens_and_ids(task):
    model = _model(keys="hidden")
    batch = make_task(task).sample(np.random.default_rng(2), 16, 12)
    prompt, prompt_ids, steps = generation_inputs(batch, batch.coupled_ids)
    fast = generate(model, prompt, prompt_ids, steps, predict_ids=True)
    slow = generate(model, prompt, prompt_ids, steps, predict_ids=True, use_cache=False)
    assert torch.equal(fast.tokens, slow.tokens) and torch.equal(fast.ids, slow.ids)


def _max_gap(task, batch) -> int:
    kept = batch.tokens[:, :batch.prompt_length - 1] < task.keep
    gaps = [int(np.diff(np.flatnonzero(row)).max(initial=0)) for row in kept.numpy()]
    return max(gaps)


@pytest.mark.parametrize("distance", ["counts", "interpolated"])
def test_counts_pointer_learns_gaps_longer_than_any_in_training(distance):
    """filter_copy trained on n <= 8 with half the tokens kept (gaps <= 8), then asked for the next id
    at n = 60 with a tenth kept: gaps of 20 and more. The first pointer (a learned vector per distance
    anchor, interpolated, clipped at 16) scores those gaps with parameters training never moved and
    fails them; the counts pointer does not."""
    torch.set_num_threads(1)
    train_task = make_task("filter_copy", symbols=6, keep=3, boundary_id="start")
    long_task = make_task("filter_copy", symbols=6, keep=3, boundary_id="start", keep_fraction=0.1)
    torch.manual_seed(1)
    model = Transformer(ModelConfig(
        vocab_size=12, d_model=32, n_layers=2, n_heads=2, position="t5_bias",
        position_args={"num_buckets": 8, "max_distance": 8}, position_head=True, position_head_kind="pointer",
        pointer_distance=distance, pointer_keys="embed", pointer_max_distance=16, pointer_max_back=2))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(250):
        batch = train_task.sample(rng, 32, int(rng.integers(2, 9)))
        loss, _, _ = answer_loss(model, batch, batch.coupled_ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()

    def next_id_hits(batch):
        with torch.no_grad():
            scores = answer_outputs(model, batch, batch.coupled_ids).extra["position"]
        pred = batch.coupled_ids[:, :batch.prompt_length].gather(1, scores.argmax(-1))
        return (pred == next_position_targets(batch, batch.coupled_ids)).float()

    assert next_id_hits(train_task.sample(np.random.default_rng(6), 64, 8)).mean() > 0.99  # both learned
    held_out = long_task.sample(np.random.default_rng(5), 64, 60)
    assert _max_gap(long_task, held_out) >= 20
    hit = next_id_hits(held_out)
    # the steps from one kept token to the next (and to the end), however long the gap; the first step is
    # read from the separator, whose own state drifts with the input's length (not the pointer's doing)
    if distance == "counts":
        assert hit[:, 1:].mean() > 0.99 and hit.mean() > 0.9, hit.mean(0)
    else:
        assert hit[:, 1:].mean() < 0.9, hit.mean(0)
