"""Generation with and without the KV cache, PPC's position head, multi-task experiment configs."""

import numpy as np
import pytest
import torch
from helpers import tiny_experiment

from lengen.answers import answer_loss, answer_outputs
from lengen.config_parse import parse_experiment
from lengen.errors import ConfigError, LengenError
from lengen.evaluate import evaluate, generation_inputs
from lengen.generate import generate
from lengen.heads.ppc import next_position_targets, pointer_anchors, pointer_loss
from lengen.model import ModelConfig, Transformer
from lengen.tasks import make_task


def _model(position: str = "learned", head: bool = False, seed: int = 0, **args) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=12, d_model=32, n_layers=2, n_heads=2, position=position,
                      position_args=args, position_head=head)
    return Transformer(cfg).eval()


def _ppc_model(seed: int = 0) -> Transformer:
    return _model("learned", head=True, seed=seed, random_offset=True, max_position=64)


def _train_briefly(model, task, steps: int = 120) -> None:
    """A short joint token + position training run on coupled ids (the scheme's id rewrite included)."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch = task.sample(rng, 32, int(rng.integers(2, 9)))
        ids = model.prepare_ids(batch.coupled_ids, gen)
        loss, _, _ = answer_loss(model, batch, ids, {"position": 1.0})
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize("position", ["nope", "rope", "alibi", "learned"])
def test_cached_generation_equals_recomputation(position):
    model = _model(position)
    batch = make_task("filter_copy").sample(np.random.default_rng(0), 16, 14)
    prompt, prompt_ids, steps = generation_inputs(batch, batch.position_ids)
    given = batch.position_ids[:, -steps:]
    fast = generate(model, prompt, prompt_ids, steps, output_ids=given)
    slow = generate(model, prompt, prompt_ids, steps, output_ids=given, use_cache=False)
    assert torch.equal(fast.tokens, slow.tokens) and torch.equal(fast.ids, given)


@pytest.mark.parametrize("restrict", [True, False])
def test_cached_ppc_generation_returns_the_same_tokens_and_ids(restrict):
    model = _ppc_model()
    batch = make_task("sort").sample(np.random.default_rng(1), 16, 12)
    prompt, prompt_ids, steps = generation_inputs(batch, batch.coupled_ids)
    fast = generate(model, prompt, prompt_ids, steps, predict_ids=True, restrict_ids=restrict)
    slow = generate(model, prompt, prompt_ids, steps, predict_ids=True, use_cache=False, restrict_ids=restrict)
    assert torch.equal(fast.tokens, slow.tokens) and torch.equal(fast.ids, slow.ids)
    if restrict:  # every predicted id occurs in the prompt
        assert all(set(r) <= set(p) for r, p in zip(fast.ids.tolist(), prompt_ids.tolist(), strict=True))


def test_generation_arguments_are_checked():
    batch = make_task("copy").sample(np.random.default_rng(0), 2, 4)
    prompt, ids, steps = generation_inputs(batch, batch.coupled_ids)
    with pytest.raises(LengenError):
        generate(_model(), prompt, ids, steps, predict_ids=True)
    with pytest.raises(LengenError):
        generate(_ppc_model(), prompt, ids, steps)
    with pytest.raises(ConfigError):
        Transformer(ModelConfig(vocab_size=12, position="rope", position_head=True))


def _position_accuracy(model: Transformer, batch) -> float:
    hidden = model.hidden(batch.tokens, batch.coupled_ids)
    rows = torch.gather(hidden, 1, batch.answer_index[:, :, None].expand(-1, -1, hidden.shape[-1]))
    _, logits = model.heads()["position"].outputs(rows, batch.coupled_ids, hidden, batch.coupled_ids)
    pred = logits.argmax(-1)
    return float((pred == next_position_targets(batch, batch.coupled_ids)).float().mean())


def test_position_head_learns_next_coupled_id():
    torch.set_num_threads(1)
    task = make_task("reverse", symbols=6)
    model = _ppc_model(seed=3)
    held_out = task.sample(np.random.default_rng(99), 128, 8)
    with torch.no_grad():
        before = _position_accuracy(model, held_out)
    _train_briefly(model, task)
    with torch.no_grad():
        after = _position_accuracy(model, held_out)
    assert before < 0.3 and after > 0.6, (before, after)


def test_evaluate_marks_oracle_ids_and_scores_ppc_positions():
    sort, copy = make_task("sort"), make_task("copy")
    plain, ppc = _model(random_offset=True, max_position=64), _ppc_model()
    assert evaluate(plain, sort, [6], 8, 0, "coupled")[0]["oracle_ids"] is True
    assert evaluate(plain, copy, [6], 8, 0, "coupled")[0]["oracle_ids"] is False
    row = evaluate(ppc, sort, [6], 8, 0, "coupled")[0]
    assert row["oracle_ids"] is False and row["eval_mode"] == "generate" and 0 <= row["position_accuracy"] <= 1


def test_multi_task_experiment_with_scheme_overrides():
    raw = tiny_experiment(tasks=[{"task": "copy"}, {"task": "addition", "train": {"max_len": 5},
                                                      "skip_schemes": ["nope"]}],
                          schemes=["nope", {"label": "ppc", "position": "learned",
                                                     "position_args": {"random_offset": True, "max_position": 64},
                                                     "model": {"position_head": True},
                                                     "train": {"ids": "coupled"}}])
    del raw["task"], raw["task_args"]
    del raw["grid"]
    cells = parse_experiment(raw).cells()
    assert [(c.task, c.scheme.label) for c in cells] == [("copy", "nope"), ("copy", "ppc"), ("addition", "ppc")]
    assert cells[1].model.position_head and cells[1].train.ids == "coupled" and not cells[0].model.position_head
    assert cells[2].train.max_len == 5 and cells[0].train.max_len == 8
    raw["schemes"][1]["train"] = {"idz": "coupled"}
    with pytest.raises(ConfigError, match="idz"):
        parse_experiment(raw)


def test_a_task_overrides_the_model_and_a_scheme_overrides_the_task():
    raw = tiny_experiment(tasks=[{"task": "copy"}, {"task": "addition", "model": {"n_layers": 3, "d_model": 48}}],
                          schemes=["nope", {"label": "wide", "position": "nope", "model": {"d_model": 64}}])
    del raw["task"], raw["task_args"], raw["grid"]
    cells = parse_experiment(raw).cells()
    shapes = {(c.task, c.scheme.label): (c.model.n_layers, c.model.d_model) for c in cells}
    assert shapes == {("copy", "nope"): (1, 32), ("copy", "wide"): (1, 64),
                      ("addition", "nope"): (3, 48), ("addition", "wide"): (3, 64)}
    # a task without a model override makes exactly the cells (and keys) it made before
    plain = tiny_experiment(tasks=[{"task": "copy"}])
    del plain["task"], plain["task_args"], plain["grid"]
    assert parse_experiment(plain).cells()[0].key == cells[0].key
    raw["tasks"][1]["model"] = {"n_layer": 3}
    with pytest.raises(ConfigError, match=r"tasks\[1\]\.model: unknown key 'n_layer'.*n_layers"):
        parse_experiment(raw)


def _pointer_model(position: str = "t5_bias", seed: int = 0, distance: str = "exact", keys: str = "hidden",
                   **args) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=12, d_model=32, n_layers=2, n_heads=2, position=position, position_args=args,
                      position_head=True, position_head_kind="pointer", pointer_max_distance=6,
                      pointer_max_back=2, pointer_distance=distance, pointer_keys=keys)
    return Transformer(cfg).eval()


@pytest.mark.parametrize("task", ["sort", "filter_copy"])
@pytest.mark.parametrize("position,distance,keys", [("t5_bias", "exact", "hidden"), ("rope", "interpolated", "hidden"),
                                                    ("learned", "interpolated", "embed")])
def test_cached_pointer_ppc_generation_returns_the_same_tokens_and_ids(task, position, distance, keys):
    model = _pointer_model(position, distance=distance, keys=keys)
    batch = make_task(task).sample(np.random.default_rng(2), 16, 12)
    prompt, prompt_ids, steps = generation_inputs(batch, batch.coupled_ids)
    fast = generate(model, prompt, prompt_ids, steps, predict_ids=True)
    slow = generate(model, prompt, prompt_ids, steps, predict_ids=True, use_cache=False)
    assert torch.equal(fast.tokens, slow.tokens) and torch.equal(fast.ids, slow.ids)
    # a pointer only predicts ids of prompt tokens
    assert all(set(r) <= set(p) for r, p in zip(fast.ids.tolist(), prompt_ids.tolist(), strict=True))


def test_pointer_loss_by_hand():
    scores = torch.tensor([[[0.0, 1.0, 2.0], [5.0, 5.0, 0.0]]])  # [B=1, A=2, P=3]
    prompt_ids = torch.tensor([[1, 2, 2]])  # the last two prompt tokens share id 2
    targets = torch.tensor([[2, 7]])  # id 7 is in no prompt token: that row is left out
    expected = torch.logsumexp(scores[0, 0], 0) - torch.logsumexp(scores[0, 0, 1:], 0)
    assert torch.allclose(pointer_loss(scores, prompt_ids, targets), expected)
    scores.requires_grad_(True)
    pointer_loss(scores, prompt_ids, targets).backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0, 1].abs().sum() == 0


def test_pointer_head_is_validated():
    with pytest.raises(ConfigError):
        Transformer(ModelConfig(vocab_size=12, position="learned", position_head=True,
                                position_head_kind="pointer", position_head_tied=True))
    with pytest.raises(ConfigError):
        ModelConfig(position_head_kind="nearest").validate()


def test_the_model_code_names_no_position_head():
    """PPC lives in its head module and its config: the model, training, evaluation and generation code
    never mention it."""
    import inspect

    from lengen import answers, evaluate, generate, model, monitor, train
    source = "".join(inspect.getsource(m) for m in (answers, evaluate, generate, model, monitor, train)).lower()
    assert not any(word in source for word in ("ppc", "pointer", "position_head", "position_class"))


@pytest.mark.parametrize("kind,distance", [("classes", "exact"), ("pointer", "exact"), ("pointer", "interpolated"),
                                           ("pointer", "counts")])
def test_checkpoints_written_before_heads_were_modules_still_load(tmp_path, kind, distance):
    from safetensors.torch import save_file

    from lengen.checkpoint import load_weights
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=12, d_model=32, n_layers=1, n_heads=2, position="learned",
                      position_args={"max_position": 64}, position_head=True, position_head_kind=kind,
                      pointer_distance=distance)
    model = Transformer(cfg)
    renames = {f"extra_heads.position.{new}": old for old, new in model.heads()["position"].legacy_keys().items()}
    old = {renames.get(k, k): v.clone() for k, v in model.state_dict().items()}
    assert any(k.startswith(("position_head", "pointer_")) for k in old)
    save_file(old, str(tmp_path / "model.safetensors"))
    fresh = Transformer(cfg)
    load_weights(tmp_path, fresh)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))


def _pointer_accuracy(model: Transformer, batch) -> float:
    scores = answer_outputs(model, batch, batch.coupled_ids).extra["position"]
    prompt_ids = batch.coupled_ids[:, :batch.prompt_length]
    pred = prompt_ids.gather(1, scores.argmax(-1))
    return float((pred == next_position_targets(batch, batch.coupled_ids)).float().mean())


def test_pointer_head_learns_next_coupled_id():
    torch.set_num_threads(1)
    task = make_task("filter_copy", symbols=6, keep=3)
    model = _pointer_model("t5_bias", seed=3)
    held_out = task.sample(np.random.default_rng(99), 128, 8)
    with torch.no_grad():
        before = _pointer_accuracy(model, held_out)
    _train_briefly(model, task)
    with torch.no_grad():
        after = _pointer_accuracy(model, held_out)
    assert before < 0.2 and after > 0.75, (before, after)


def test_interpolated_pointer_distances_by_hand():
    assert pointer_anchors(16) == [0, 1, 2, 3, 4, 6, 8, 12, 16] and pointer_anchors(2) == [0, 1, 2]
    head = _pointer_model(distance="interpolated").heads()["position"]  # anchors -2 -1 0 1 2 3 4 6
    assert head.anchors.tolist() == [-2, -1, 0, 1, 2, 3, 4, 6]
    rows, memory = torch.randn(1, 1, 32), torch.zeros(1, 12, 32)  # zero memory: the distance term only
    scores = head.scores(rows, torch.tensor([[3]]), memory, torch.arange(12)[None])[0, 0]
    per_anchor = head.query(rows)[0, 0] @ head.distance.weight.T / 32 ** 0.5
    assert torch.allclose(scores[3 + 5], (per_anchor[6] + per_anchor[7]) / 2, atol=1e-6)  # distance 5
    assert torch.allclose(scores[3 + 8], per_anchor[7], atol=1e-6)  # beyond the clip: the last anchor
    assert torch.allclose(scores[0], per_anchor[0], atol=1e-6)  # distance -3: clipped to -2
