"""Evaluation metrics: a registry, one loop for teacher-forced and generated evaluation."""

from collections.abc import Callable

import numpy as np
import pytest
import torch

from lengen.errors import ConfigError
from lengen.evaluate import evaluate
from lengen.heads import HEADS
from lengen.heads.base import HEAD_BUILDERS
from lengen.metrics import METRICS, REGISTRY, Scored, Tallies, Tally, register_metric
from lengen.model import ModelConfig, Transformer
from lengen.registry import FunctionRegistry
from lengen.tasks import make_task


def _model(**args) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=12, d_model=32, n_layers=1, n_heads=2, **args)).eval()


def test_a_new_metric_is_one_function_and_a_decorator():
    @register_metric("test_first_token_accuracy")
    def first_token(s: Scored) -> Tally:
        hit = s.tokens[:, 0] == s.answers[:, 0]
        return hit.sum(), hit.numel()

    try:
        rows = evaluate(_model(position="rope"), make_task("copy"), [4, 6], 16, 0, mode="generate",
                        metrics=["accuracy", "test_first_token_accuracy"])
        for row in rows:
            assert 0 <= row["test_first_token_accuracy"] <= 1 and "exact_match" not in row
        with pytest.raises(ConfigError, match="registered twice"):
            register_metric("test_first_token_accuracy")(first_token)
    finally:
        del METRICS["test_first_token_accuracy"]


def test_unknown_metric_is_a_one_line_error():
    with pytest.raises(ConfigError, match="unknown metric 'acuracy'.*accuracy"):
        evaluate(_model(), make_task("copy"), [4], 4, 0, metrics=["acuracy"])


def test_function_registry_shared_by_metrics_and_heads():
    assert HEADS is HEAD_BUILDERS.functions and METRICS is REGISTRY.functions
    reg: FunctionRegistry[Callable[[], int]] = FunctionRegistry("widget")
    reg.register("one")(lambda: 1)
    with pytest.raises(ConfigError, match="widget 'one' is registered twice"):
        reg.register("one")(lambda: 2)
    assert reg.get("one")() == 1 and reg.names() == ["one"]
    with pytest.raises(ConfigError, match=r"^unknown widget 'onee' \(did you mean 'one'\?\); known: one$"):
        reg.check(["one", "onee"])
    with pytest.raises(ConfigError, match=r"unknown widget \[1\]; known: one$"):
        reg.get([1])  # type: ignore[arg-type]
    reg.unregister("one")
    assert reg.names() == []


def test_tallies_sum_over_batches_then_divide():
    tallies = Tallies(["accuracy", "exact_match", "position_accuracy", "loss_by_position", "token_loss"])
    tallies.add(Scored(torch.tensor([[1, 2], [1, 1]]), torch.tensor([[1, 2], [1, 2]]),
                       token_loss=torch.tensor([[1.0, 2.0], [3.0, 4.0]])))
    tallies.add(Scored(torch.tensor([[0, 2]]), torch.tensor([[1, 2]]), token_loss=torch.tensor([[2.0, 0.0]])))
    out = tallies.result()
    assert out["accuracy"] == 4 / 6 and out["exact_match"] == 1 / 3 and "position_accuracy" not in out
    assert out["loss_by_position"] == pytest.approx([2.0, 2.0]) and out["token_loss"] == pytest.approx(2.0)


def test_teacher_forced_loss_metrics_agree_with_each_other():
    task = make_task("copy")
    rows = evaluate(_model(position="rope"), task, [6], 24, 0, mode="teacher",
                    metrics=["accuracy", "token_loss", "loss_by_position"])
    by_position = rows[0]["loss_by_position"]
    assert len(by_position) == task.sample(np.random.default_rng(0), 1, 6).answers().shape[1]
    assert np.mean(by_position) == pytest.approx(rows[0]["token_loss"])
    assert rows[0]["token_loss"] > 0


def test_generation_scores_predicted_ids_only_with_an_id_head():
    sort = make_task("sort")
    plain = evaluate(_model(position="rope"), sort, [6], 8, 0, "coupled", mode="generate")[0]
    ppc = evaluate(_model(position="t5_bias", position_head=True, position_head_kind="pointer"), sort, [6], 8, 0,
                   "coupled", mode="generate")[0]
    assert "position_accuracy" not in plain and 0 <= ppc["position_accuracy"] <= 1
    assert list(ppc)[:4] == ["eval_len", "accuracy", "exact_match", "n_eval"]
