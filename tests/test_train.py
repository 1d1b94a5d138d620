"""Training properties: it learns, it is deterministic by seed, resume equals uninterrupted."""

import dataclasses
import math

import pytest
import torch
from helpers import tiny_cell

from lengen.errors import LengenError, TrainingDiverged
from lengen.evaluate import evaluate
from lengen.train import lr_at, train


def test_a_tiny_model_learns_k1_in_distribution():
    cell = tiny_cell(train={"steps": 400, "target_accuracy": 0.98, "check_every": 50})
    result = train(cell, progress=False)
    acc = evaluate(result.model, cell.build_task(), [8], 256, seed=3)[0]["accuracy"]
    assert acc >= 0.95, (acc, result.history[-3:])
    assert result.stopped_early and result.steps < 400


def test_same_seed_same_model_other_seed_other_model():
    a = train(tiny_cell(), progress=False).model.state_dict()
    b = train(tiny_cell(), progress=False).model.state_dict()
    c = train(tiny_cell(seeds=[1]), progress=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("scheme", ["nope", {"position": "learned", "position_args": {"random_offset": True}},
                                    {"position": "randomized", "position_args": {"max_position": 64}}])
def test_resume_equals_uninterrupted(tmp_path, scheme):
    cell = tiny_cell(schemes=[scheme])
    full = train(cell, out_dir=tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):  # interrupted between two checkpoints
        train(cell, out_dir=tmp_path / "cut", progress=False, stop_after=30)
    resumed = train(cell, out_dir=tmp_path / "cut", resume=True, progress=False)
    assert resumed.steps == full.steps == 60
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history
    task = cell.build_task()
    assert evaluate(full.model, task, [8, 16], 64, 0) == evaluate(resumed.model, task, [8, 16], 64, 0)


def test_resume_of_a_finished_run_returns_it(tmp_path):
    cell = tiny_cell()
    first = train(cell, out_dir=tmp_path, progress=False)
    again = train(cell, out_dir=tmp_path, resume=True, progress=False)
    assert again.steps == first.steps
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in first.model.state_dict().items())


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    train(tiny_cell(), out_dir=tmp_path, progress=False)
    with pytest.raises(LengenError, match="different configuration"):
        train(tiny_cell(seeds=[5]), out_dir=tmp_path, resume=True, progress=False)


def test_divergence_is_a_clear_error():
    cell = tiny_cell(train={"lr": 1e30, "warmup": 0, "grad_clip": 0.0})
    with pytest.raises(TrainingDiverged, match="loss became"):
        train(cell, progress=False)


def test_learning_rate_schedule_warms_up_then_decays():
    cell = tiny_cell(train={"steps": 1000, "warmup": 100, "lr": 1.0})
    lrs = [lr_at(s, cell.train) for s in range(1000)]
    assert lrs[0] == pytest.approx(0.01) and lrs[99] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:], strict=False))
    assert math.isclose(lrs[-1], 0.1, rel_tol=1e-3)


def test_resume_accepts_a_checkpoint_written_before_an_option_existed(tmp_path):
    import json

    cell = tiny_cell()
    with pytest.raises(KeyboardInterrupt):
        train(cell, out_dir=tmp_path, progress=False, stop_after=20)
    state_file = tmp_path / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    state["cell"]["train"].pop("compile")  # as written by a lengen without that option
    state_file.write_text(json.dumps(state))
    assert train(cell, out_dir=tmp_path, resume=True, progress=False).steps == 60


@pytest.mark.parametrize("scheme", [{"position": "learned", "position_args": {"max_position": 64}}, "rope"])
def test_compiled_training_is_one_graph_and_matches_eager(scheme):
    """train.compile: the loss forward compiles without graph breaks (a break at every layer once made
    it slower than eager) and trains the model eager training does, up to float rounding."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    steps = {"steps": 12, "check_every": 4, "checkpoint_every": 100}
    eager = train(tiny_cell(schemes=[scheme], train=steps), progress=False)
    compiled = train(tiny_cell(schemes=[scheme], train={**steps, "compile": True}), progress=False)
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    for a, b in zip(eager.history, compiled.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
    a, b = eager.model.state_dict(), compiled.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_compiled_training_still_names_ids_beyond_the_table():
    from lengen.errors import ConfigError

    cell = tiny_cell(schemes=[{"position": "learned", "position_args": {"max_position": 64}}],
                     train={"compile": True})
    # past the experiment's own validation (it rejects this table for these lengths up front)
    cell = dataclasses.replace(cell, model=dataclasses.replace(cell.model, position_args={"max_position": 6}))
    with pytest.raises(ConfigError, match="exceeds its table of 6 positions"):
        train(cell, progress=False)
