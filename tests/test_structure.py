"""Ground-truth structure (lengen.tasks.structure, `lengen tasks --structure`) on tasks whose structure
is known by construction."""

from __future__ import annotations

import json

import pytest

from lengen.cli import main
from lengen.tasks import make_task
from lengen.tasks.structure import measure_length, task_structure


def test_known_structures():
    copy = task_structure(make_task("copy"), 10)
    assert copy.short.k.max == copy.long.k.max == 1 and not copy.k_grows
    assert copy.short.empty == 256  # the EOS of every sample depends on nothing
    parity = task_structure(make_task("parity_check"), 10)
    assert (parity.short.k.mean, parity.long.k.mean) == (10, 20) and parity.k_grows
    even = task_structure(make_task("even_pairs"), 10)
    assert even.short.k.max == 2 and not even.k_grows and even.span_grows and even.short.span.mean == 9
    assert even.short.id_span is None  # no coupled ids


def test_coupling_makes_addition_local_in_id_space_not_in_raw_positions():
    s = task_structure(make_task("addition", pad_operands=True), 12)
    assert s.short.k.max == 5 and not s.k_grows
    assert s.long.id_reach is not None and s.long.id_reach.max <= 1  # one id step, at any length
    assert s.span_grows  # in raw positions the digits are n apart


def test_sort_is_dense_and_variable_tracking_sparse_but_spread():
    sort = task_structure(make_task("sort"), 8)
    assert sort.k_grows and sort.short.k.p90 == 8
    vt = measure_length(make_task("variable_tracking", hops=2), 20)
    assert vt.k.max == vt.k.mean == 7 and vt.span.mean > 20


def test_cli_structure_table_and_json(capsys):
    assert main(["tasks", "--structure", "--task", "copy", "--task", "parity_check", "--length", "8",
                 "--samples", "32"]) == 0
    out = capsys.readouterr().out
    assert "parity_check" in out and "8/16" in out
    assert main(["tasks", "--structure", "--task", "even_pairs", "--json", "--samples", "16"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["task"] == "even_pairs" and rows[0]["short"]["k"]["max"] == 2 and rows[0]["k_grows"] is False


def test_cli_structure_rejects_tasks_without_ground_truth(capsys):
    assert main(["tasks", "--structure", "--task", "text"]) == 2
    err = capsys.readouterr().err
    assert "no ground-truth dependency sets" in err and err.count("\n") == 1


@pytest.mark.parametrize("flags, message", [
    (["--length", "-1"], "--length and --samples must be at least 1, got -1 and 256"),  # was: a table at L=-1
    (["--samples", "0"], "--length and --samples must be at least 1, got 16 and 0"),
    (["--length", "100000000000"], "--length x --samples must be at most 10,000,000 (memory)"),  # was: 11.6 TiB
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
])
def test_cli_structure_rejects_bad_numbers_in_one_line(capsys, flags, message):
    assert main(["tasks", "--structure", "--task", "sparse_parity", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lengen: error: ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("length", [8, 16, 24])
def test_growth_verdict_is_stable_across_lengths(length):
    # per-batch layout draws (addition's shorter operand) and discrete p90s must not flip the verdict
    for name, grows in (("addition", False), ("binary_multiplication", True), ("filter_copy", False),
                        ("squeeze", False), ("compute_sqrt", True), ("variable_tracking", False)):
        assert task_structure(make_task(name), length).k_grows is grows, (name, length)
