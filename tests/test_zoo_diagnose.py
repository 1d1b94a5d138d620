"""The zoo's diagnosed sparsity (lengen.report.zoo_diagnose) and the answer column of task_queries:
the scored tokens' ground truth comes from the chosen answer, coupled models are skipped with a reason,
cached diagnoses are reused, and the estimate enters the correlation as its own predictor."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import yaml
from helpers import tiny_experiment

from lengen.cli import main
from lengen.diagnose.sources import task_queries
from lengen.errors import LengenError
from lengen.report.results import read_results, write_csv
from lengen.report.zoo import ESTIMATED, Model, correlate, estimated_k, models_from_rows
from lengen.report.zoo_diagnose import OUT_DIR, diagnose_models
from lengen.tasks import make_task


def test_task_queries_scores_the_chosen_answer_token():
    task = make_task("reverse")
    batch = task.sample(np.random.default_rng(3), 16, 6)
    for answer, column in ((0, 0), (2, 2), (-2, batch.answer_index.shape[1] - 2)):
        q = task_queries(task, 6, 16, seed=3, answer=answer)
        where = int(batch.answer_index[0, column])
        assert q.tokens.shape[1] == where + 1  # the row ends where that answer is predicted
        assert q.target.tolist() == batch.targets[:, where].tolist()
        assert q.truth == [[int(d) for d in row if d >= 0] for row in batch.dependencies[:, column]]
    with pytest.raises(LengenError, match="answer 99 does not exist"):
        task_queries(task, 6, 16, answer=99)


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zoo")
    raw = tiny_experiment(experiment="tiny-zoo", task=None, task_args=None, grid=None,
                          tasks=[{"task": "reverse_string"}, {"task": "even_pairs", "skip_schemes": ["coupled"]}],
                          schemes=["nope", {"label": "coupled", "position": "t5_bias", "train": {"ids": "coupled"}}],
                          eval={"lengths": [8, 12], "samples": 16})
    for key in ("task", "task_args", "grid"):
        raw.pop(key)
    path = tmp / "zoo.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--workers", "1", "--no-size-check"]) == 0
    return out


def test_plain_models_are_diagnosed_and_coupled_ones_skipped(zoo_run):
    wanted = [("reverse_string", "nope", 0, 8), ("even_pairs", "nope", 0, 8), ("reverse_string", "coupled", 0, 8),
              ("even_pairs", "nope", 7, 8)]
    rev, even, coupled, missing = diagnose_models(zoo_run, wanted, samples=8)
    # reverse: three answer tokens (first, middle, last with a dependency), each depends on one input token
    assert rev.skipped == "" and rev.scored == 3 * 8 and rev.k_true == 1.0
    # even_pairs: one answer token, which depends on the first and the last bit
    assert even.skipped == "" and even.scored == 8 and even.k_true == 2.0
    for e in (rev, even):
        assert e.k_est >= 0 and 0 <= e.recall <= 1
    assert "coupled ids" in coupled.skipped and math.isnan(coupled.k_est)
    assert "no checkpoint" in missing.skipped
    cached = sorted(p.parent.name for p in (zoo_run / OUT_DIR).rglob("partial.json"))
    assert len(cached) == 4  # reverse: 3 answer columns; even_pairs: 1
    # a second call reads the cached diagnoses instead of recomputing them: mark the cache and see the mark
    for partial in (zoo_run / OUT_DIR).rglob("partial.json"):
        state = json.loads(partial.read_text())
        for r in state["records"]:
            r["k"] = 5
        partial.write_text(json.dumps(state))
    again = diagnose_models(zoo_run, wanted[:2], samples=8)
    assert [e.k_est for e in again] == [5.0, 5.0]


def test_estimated_k_is_a_predictor_of_its_own(zoo_run):
    models = models_from_rows(read_results(zoo_run / "results.csv"), 0.9, 0.9)
    for m in models:  # pretend every model learned, with g falling as the estimate grows
        m.learned = True
    estimates = {("reverse_string", "nope"): 1.0, ("even_pairs", "nope"): 2.0}
    predictors = {"reverse_string": {"k": 1.0, "span": 0.0, "id_span": 0.0},
                  "even_pairs": {"k": 2.0, "span": 7.0, "id_span": math.nan}}
    # two tasks are below the zoo's minimum of three: no row, with or without the estimate
    assert not [c for c in correlate(models, predictors, reps=20, estimated=estimates) if c.predictor == ESTIMATED]
    models += [Model("copy", "nope", 0, 8, 1.0, True, 8.0, 0.5)]
    predictors["copy"] = {"k": 1.0, "span": 0.0, "id_span": 0.0}
    rows = correlate(models, predictors, reps=20, estimated={**estimates, ("copy", "nope"): 5.0})
    assert [c.n_tasks for c in rows if c.scheme == "nope" and c.predictor == ESTIMATED] == [3]


def test_estimated_k_is_the_median_over_seeds_and_ignores_skipped(zoo_run):
    (rev,) = diagnose_models(zoo_run, [("reverse_string", "nope", 0, 8)], samples=8)
    skipped = diagnose_models(zoo_run, [("reverse_string", "coupled", 0, 8)], samples=8)
    assert estimated_k([rev, *skipped]) == {("reverse_string", "nope"): rev.k_est}


def test_zoo_report_cli_with_diagnose(zoo_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(zoo_run, run)
    rows = read_results(run / "results.csv")
    for r in rows:  # a 60-step model rarely reaches the bar; the report diagnoses learned models only
        r.update(learned=True, l_star=r["train_max_len"])
    write_csv(run / "results.csv", rows)
    assert main(["zoo-report", str(run), "--diagnose", "8"]) == 0
    data = json.loads((run / "zoo.json").read_text())
    diagnosed = {(d["task"], d["scheme"]): d for d in data["diagnosed"]}
    assert diagnosed[("reverse_string", "nope")]["scored"] == 24
    assert "coupled ids" in diagnosed[("reverse_string", "coupled")]["skipped"]
    assert "| reverse_string | coupled | 0 | - |" in (run / "zoo.md").read_text()
    assert main(["zoo-report", str(run), "--diagnose", "-1"]) == 2
    assert "--diagnose must be" in capsys.readouterr().err


def test_diagnose_cli_scores_the_chosen_answer(zoo_run, tmp_path, capsys):
    cell = next(p.parent for p in (zoo_run / "cells").glob("*/cell.json")
                if json.loads(p.read_text())["task"] == "reverse_string"
                and json.loads(p.read_text())["scheme"]["label"] == "nope")
    out = tmp_path / "d"
    argv = ["diagnose", "--model", str(cell), "--length", "6", "--budget", "4", "--no-progress", "--no-truncation"]
    assert main([*argv, "--answer", "-2", "--out", str(out)]) == 0
    state = json.loads((out / "partial.json").read_text())
    batch = make_task("reverse_string").sample(np.random.default_rng(0), 4, 6)
    column = batch.answer_index.shape[1] - 2
    assert state["window"] == int(batch.answer_index[0, column]) + 1
    assert [r["truth"] for r in state["records"]] == [[int(d) for d in row if d >= 0]
                                                        for row in batch.dependencies[:, column]]
    capsys.readouterr()
    assert main([*argv, "--answer", "40", "--out", str(tmp_path / "e")]) == 2
    assert "answer 40 does not exist" in capsys.readouterr().err
