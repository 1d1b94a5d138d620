"""The training protocol: stop and select on the target distribution, learned flags, L*, curves."""

from __future__ import annotations

import csv

import pytest
from helpers import tiny_experiment

from lengen.config import Cell
from lengen.config_parse import parse_experiment
from lengen.experiment import run_experiment
from lengen.measures import l_star, l_star_threshold
from lengen.report.protocol import excluded_models, l_star_rows, spearman
from lengen.rows import with_protocol_columns
from lengen.tasks import make_task
from lengen.train import replace_train, train


def _mixture_cell(stop_on: str) -> Cell:
    """k drawn from 1..4 in training, target k = 4 only: small k are learned first, so the mixture's
    accuracy passes a 0.7 bar while k = 4 is still near chance."""
    raw = {**{k: v for k, v in tiny_experiment().items() if k != "grid"}, "task_args": {"noise_vocab": 4, "k": 4, "k_min": 1}}
    raw["train"] = {**raw["train"], "steps": 400, "target_accuracy": 0.7, "check_every": 20, "stop_on": stop_on,
                    "curve_every": 0, "stop_samples": 128, "min_len": 6, "max_len": 10}
    raw["eval"] = {**raw["eval"], "task_args": {"k_min": None}, "grid": {"k": [4]}}
    return parse_experiment(raw).cells()[0]


def test_stopping_reads_the_target_distribution_not_the_training_mixture():
    mixture = train(_mixture_cell("mixture"), progress=False)
    target = train(_mixture_cell("target"), progress=False)
    assert mixture.stopped_early  # the mixture passed the bar ...
    stop = mixture.steps
    at_stop = next(h for h in target.history if h["step"] == stop)  # same seed: the same run up to there
    assert at_stop["accuracy"] == pytest.approx(mixture.history[-1]["accuracy"])
    assert at_stop["accuracy"] >= 0.7 and at_stop["target"]["k=4"] < 0.7  # ... while k = 4 had not
    assert target.steps > stop  # so the protocol trained on
    if target.stopped_early:
        assert target.history[-1]["target"]["k=4"] >= 0.7


def test_selection_keeps_the_weights_with_the_best_target_score():
    cell = replace_train(_mixture_cell("target"), target_accuracy=None, steps=200)
    result = train(cell, progress=False)
    scored = [h for h in result.history if "target" in h]
    best = max(scored, key=lambda h: (h["target"]["k=4"], -h["step"]))
    assert result.selected_step == best["step"]
    assert result.target_scores == best["target"]


def test_l_star_on_a_hand_built_curve():
    assert l_star_threshold(0.5, 0.8) == pytest.approx(0.9)
    curve = [(24, 1.0), (32, 0.95), (40, 0.85), (48, 0.97), (56, 0.99)]
    assert l_star(curve, 0.9) == 32  # 48 and 56 pass again, but 40 broke the run
    assert l_star(reversed(curve), 0.9) == 32  # order of the points does not matter
    assert l_star([(24, 0.6)], 0.9) == 0  # fails at the shortest length
    assert l_star([(24, 0.95), (32, 0.9)], 0.9) == 32  # the threshold itself passes


def test_learned_flag_and_l_star_columns():
    raw = tiny_experiment()
    cell = parse_experiment(raw).cells()[0]
    task = make_task("sparse_parity", k=1, noise_vocab=4)
    results = [{"eval_len": n, "accuracy": a, "exact_match": a} for n, a in
               [(cell.train.max_len, 0.94), (2 * cell.train.max_len, 0.93)]]
    rows = with_protocol_columns(cell, task, results)
    assert all(r["learned"] is False and r["in_dist_accuracy"] == 0.94 and r["chance"] == 0.5 for r in rows)
    assert all(r["l_star"] == 2 * cell.train.max_len for r in rows)  # both above 0.9


def _row(seed: int, k: int, learned: bool, star: int, n: int = 40) -> dict:
    return {"experiment": "x", "task": "t", "scheme": "nope", "k": k, "seed": seed, "eval_len": n,
            "accuracy": 1.0, "exact_match": 1.0, "learned": learned, "l_star": star, "train_max_len": 20}


def test_models_that_did_not_learn_are_excluded_and_listed():
    rows = [_row(0, 1, True, 80), _row(1, 1, False, 0), _row(0, 2, True, 40)]
    kept, excluded = excluded_models(rows)
    assert [r["seed"] for r in kept] == [0, 0]
    assert excluded == [{"k": 1, "seed": 1}]  # named by the columns that tell models apart
    summary = l_star_rows(kept)
    assert {(r["k"], r["l_star_mean"], r["models"]) for r in summary} == {(1, 80.0, 1), (2, 40.0, 1)}


def test_spearman():
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [5, 5, 5]) is None  # no variation: undefined, not 0


def test_an_experiment_writes_protocol_columns_and_curves(tmp_path):
    raw = {**{k: v for k, v in tiny_experiment().items() if k != "grid"}, "task_args": {"noise_vocab": 4, "k": 2, "k_min": 1, "k_tokens": 2}}
    raw["train"] = {**raw["train"], "steps": 60, "check_every": 20, "curve_every": 40, "stop_samples": 32,
                    "curve_samples": 16, "min_len": 6, "max_len": 10}
    raw["eval"] = {"lengths": {"from": 10, "to": 30, "step": 10}, "samples": 32, "task_args": {"k_min": None},
                   "grid": {"k": [1, 2]}}
    cfg = parse_experiment(raw)
    rows = run_experiment(cfg, tmp_path, progress=False, report=False)
    assert {r["k"] for r in rows} == {1, 2} and {r["eval_len"] for r in rows} == {10, 20, 30}
    assert all({"learned", "l_star", "in_dist_accuracy", "chance", "selected_step"} <= set(r) for r in rows)
    (cell_dir,) = (tmp_path / "cells").iterdir()
    with open(cell_dir / "metrics.csv", encoding="utf-8") as f:
        metrics = list(csv.DictReader(f))
    assert {m["metric"] for m in metrics} >= {"train_loss", "target_exact", "exact"}
    curves = {(m["setting"], m["eval_len"]) for m in metrics if m["metric"] == "exact"}
    assert curves == {(f"k={k}", str(n)) for k in (1, 2) for n in (20, 40, 80)}


@pytest.mark.parametrize("seed", [0, 1])
def test_idealized_learner_recovers_the_planted_positions_and_generalizes(seed):
    from lengen.idealized import accuracy_at, fit_on_task

    task = make_task("offset_parity", k=2, span=5)
    learner = fit_on_task(task, [8, 9, 10], 1500, seed, window=8, k_max=2)
    assert learner.selector is not None and learner.train_error == 0
    # the marker (token 2) and the task's offsets: exactly the dependency set of every answer
    assert (learner.selector.anchor, learner.selector.offsets) == (2, tuple(int(o) for o in task.offsets))
    assert all(accuracy_at(learner, task, n, 256, 7) == 1.0 for n in (10, 40, 160))  # any length

    sparse = make_task("sparse_parity", k=3, k_min=1, noise_vocab=4)
    learner = fit_on_task(sparse, [6, 8, 10], 3000, seed, window=8, k_max=3)
    assert learner.selector is not None and learner.selector.anchor is None
    assert set(learner.selector.content) <= {4, 5}  # planted symbols, found by content
    fixed = make_task("sparse_parity", k=3, k_tokens=3, noise_vocab=4)
    assert accuracy_at(learner, fixed, 160, 256, 7) == 1.0


def test_idealized_rows_sit_beside_the_transformers(tmp_path):
    raw = {**{k: v for k, v in tiny_experiment().items() if k != "grid"},
           "task_args": {"noise_vocab": 4, "k": 2, "k_min": 1, "k_tokens": 2}, "idealized": 2000}
    raw["train"] = {**raw["train"], "steps": 20, "min_len": 6, "max_len": 8}
    raw["eval"] = {"lengths": [8, 32], "samples": 64, "task_args": {"k_min": None}, "grid": {"k": [1, 2]}}
    rows = run_experiment(parse_experiment(raw), tmp_path, progress=False, report=False)
    ideal = [r for r in rows if r["scheme"] == "idealized"]
    assert {(r["k"], r["eval_len"]) for r in ideal} == {(k, n) for k in (1, 2) for n in (8, 32)}
    assert all(r["accuracy"] == 1.0 and r["learned"] and r["l_star"] == 32 for r in ideal)


def test_selection_prefers_a_model_that_learned_all_settings_but_one_over_an_untrained_one():
    from lengen.train import selection_score

    untrained = {"k=1": 0.52, "k=2": 0.5, "k=8": 0.5}
    nearly = {"k=1": 1.0, "k=2": 1.0, "k=8": 0.48}
    assert selection_score(nearly) > selection_score(untrained)
    assert min(nearly.values()) < min(untrained.values())  # what a worst-setting rule would have preferred
