"""The zoo finding (lengen.report.zoo): L* and learned flags from rows, Spearman with ties, the
bootstrap, and the report files, on a synthetic run whose answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lengen.cli import main
from lengen.errors import LengenError
from lengen.report.results import write_csv
from lengen.report.zoo import correlate, models_from_rows, ruoss_direction, spearman, write_zoo_report


def test_spearman_monotone_ties_and_constant():
    x = np.array([1.0, 2, 3, 4, 5])
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    assert spearman(x, -np.exp(x)) == pytest.approx(-1.0)
    assert spearman(np.array([1.0, 1, 2, 3]), np.array([5.0, 5, 6, 7])) == pytest.approx(1.0)
    assert math.isnan(spearman(x, np.ones(5)))


def _rows(task, scheme, seed, train_len, accs):
    lengths = [train_len * f for f in (1, 2, 3, 4)]
    return [{"experiment": "zoo", "task": task, "scheme": scheme, "seed": seed, "train_max_len": train_len,
             "eval_len": n, "accuracy": a} for n, a in zip(lengths, accs, strict=True)]


def test_l_star_is_the_last_length_before_the_first_drop_and_unlearned_models_have_none():
    rows = _rows("copy", "nope", 0, 10, [1.0, 0.95, 0.5, 0.99]) + _rows("sort", "nope", 0, 10, [0.6, 0.5, 0.5, 0.5])
    copy, sort = models_from_rows(rows, learned_at=0.9, holds_at=0.9)
    assert (copy.task, copy.learned, copy.l_star, copy.g) == ("copy", True, 20.0, 2.0)
    assert copy.beyond == pytest.approx((0.95 + 0.5 + 0.99) / 3)
    assert not sort.learned and math.isnan(sort.l_star)


def test_protocol_columns_win_over_the_fallback():
    rows = _rows("copy", "nope", 0, 10, [1.0, 1.0, 1.0, 1.0])
    for r in rows:  # the protocol judged exact match: not learned, whatever the per-token accuracy says
        r.update(learned=False, l_star=0, in_dist_accuracy=0.0)
    (model,) = models_from_rows(rows, 0.9, 0.9)
    assert not model.learned and model.in_dist == 0.0 and math.isnan(model.l_star)
    for r in rows:
        r.update(learned=True, l_star=30, in_dist_accuracy=0.97)
    (model,) = models_from_rows(rows, 0.9, 0.9)
    assert model.learned and model.g == 3.0


def _synthetic_run(tmp_path):
    # k: copy 1, even_pairs 2, variable_tracking 7, parity_check L: g falls with k; sort never learns
    plan = {"copy": [1, 1, 1, 1], "even_pairs": [1, 1, 1, 0.5], "variable_tracking": [1, 1, 0.5, 0.5],
            "parity_check": [1, 0.5, 0.5, 0.5], "sort": [0.3, 0.2, 0.2, 0.2]}
    rows = []
    for t, accs in plan.items():
        for seed in (0, 1):
            rows += _rows(t, "nope", seed, 6, accs)
            rows += _rows(t, "randomized", seed, 6, [min(1.0, a + 0.1) for a in accs])
            (tmp_path / "cells" / f"{t}{seed}").mkdir(parents=True)
            (tmp_path / "cells" / f"{t}{seed}" / "cell.json").write_text(json.dumps({"task": t, "task_args": {}}))
    write_csv(tmp_path / "results.csv", rows)
    return rows


def test_correlation_recovers_a_planted_negative_ranking(tmp_path):
    rows = _synthetic_run(tmp_path)
    models = models_from_rows(rows, 0.9, 0.9)
    predictors = {"copy": {"k": 1, "span": 0, "id_span": 0}, "even_pairs": {"k": 2, "span": 5, "id_span": math.nan},
                  "variable_tracking": {"k": 7, "span": 15, "id_span": math.nan},
                  "parity_check": {"k": 6, "span": 5, "id_span": math.nan}, "sort": {"k": 6, "span": 5, "id_span": 5}}
    nope_k = next(c for c in correlate(models, predictors, reps=200) if c.scheme == "nope" and c.predictor == "k")
    assert nope_k.n_tasks == 4 and nope_k.excluded == ["sort"]
    assert nope_k.rho < -0.7 and nope_k.low <= nope_k.rho <= nope_k.high
    ruoss = ruoss_direction(models)
    assert ruoss is not None and ruoss["tasks"] == 5 and ruoss["mean_difference"] > 0


def test_zoo_report_files_and_cli(tmp_path, capsys):
    _synthetic_run(tmp_path)
    path = write_zoo_report(tmp_path)
    text = path.read_text()
    assert "| parity_check |" in text and "- (0/2)" in text  # sort: no seed learned
    data = json.loads((tmp_path / "zoo.json").read_text())
    assert data["predictors"]["parity_check"]["k"] == 6  # measured from the task at its training length
    assert (tmp_path / "zoo_scatter.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["zoo-report", str(tmp_path)]) == 0
    assert "Spearman" in capsys.readouterr().out
    assert main(["zoo-report", str(tmp_path / "missing")]) == 2


def test_report_of_a_run_where_nothing_learned(tmp_path):
    rows = _rows("copy", "nope", 0, 6, [0.2, 0.1, 0.1, 0.1])
    (tmp_path / "cells" / "c").mkdir(parents=True)
    (tmp_path / "cells" / "c" / "cell.json").write_text(json.dumps({"task": "copy", "task_args": {}}))
    write_csv(tmp_path / "results.csv", rows)
    text = write_zoo_report(tmp_path).read_text()
    assert "- (0/1)" in text and (tmp_path / "zoo_scatter.png").is_file()


def test_full_run_estimate_scales_per_step_times(tmp_path):
    from lengen.config_parse import parse_experiment
    from lengen.report.zoo import estimate_full_run

    for task, per_step in (("copy", 0.1), ("parity_check", 0.2)):
        cell = tmp_path / "cells" / task
        cell.mkdir(parents=True)
        row = {"task": task, "train_wall_s": 100 * per_step, "train_steps": 100, "eval_wall_s": 4.0, "n_eval": 64}
        (cell / "rows.json").write_text(json.dumps([row]))
    full = parse_experiment({"experiment": "z", "tasks": [{"task": "copy"}, {"task": "parity_check"}],
                             "schemes": ["nope", "rope"], "seeds": [0, 1, 2],
                             "train": {"steps": 1000, "curve_every": 0}, "eval": {"samples": 128}})
    e = estimate_full_run(tmp_path, full, workers=2)
    # 6 cells per task: 1000 steps x (0.1 or 0.2 s) + 8 s of evaluation (twice the samples)
    assert e["cells"] == 12 and e["worker_hours"] == pytest.approx(6 * (100 + 8 + 200 + 8) / 3600)
    assert e["wall_hours"] == pytest.approx(e["worker_hours"] / 2)


def test_scheme_comparison_pools_labels_and_pairs_tasks():
    from lengen.report.zoo import Model, compare_schemes, parse_comparison

    def m(task, scheme, seed, l_star, beyond, learned=True):
        return Model(task, scheme, seed, 10, 1.0 if learned else 0.2, learned, l_star if learned else math.nan, beyond)

    models = [m("copy", "coupled", s, 40, 0.9) for s in (0, 1, 2)] + [m("sort", "ppc", 0, 20, 0.7)]
    models += [m("copy", "rope", s, 10, 0.5) for s in (0, 1, 2)] + [m("sort", "rope", 0, 10, 0.3, learned=False)]
    models += [m("parity", "rope", 0, 10, 0.5)]  # no treated model: not a pair
    treated, baseline = parse_comparison("coupled, ppc:rope")
    assert (treated, baseline) == (["coupled", "ppc"], ["rope"])
    c = compare_schemes(models, treated, baseline, reps=200)
    assert c is not None and c["tasks"] == 2 and c["per_task"] == {"copy": 0.4, "sort": 0.4}
    assert c["mean_difference"] == pytest.approx(0.4) and c["low"] == pytest.approx(0.4)
    # L*/L only where both sides learned: sort's RoPE model did not
    assert c["g_tasks"] == 1 and c["g_per_task"] == {"copy": {"treated": 4.0, "baseline": 1.0}}
    assert c["g_difference"] == pytest.approx(3.0)
    assert compare_schemes(models, ["alibi"], ["rope"]) is None
    for bad in ("coupled", "coupled:", ":rope", "a:b:c"):
        with pytest.raises(LengenError, match="TREATED:BASELINE"):
            parse_comparison(bad)


def test_zoo_report_cli_compare(tmp_path, capsys):
    _synthetic_run(tmp_path)
    assert main(["zoo-report", str(tmp_path), "--compare", "randomized:nope"]) == 0
    assert "**randomized minus nope** over 5 tasks" in capsys.readouterr().out
    data = json.loads((tmp_path / "zoo.json").read_text())
    assert data["comparisons"][0]["g_tasks"] == 4  # sort learned under neither scheme
    assert main(["zoo-report", str(tmp_path), "--compare", "randomized"]) == 2
