"""End to end through the CLI: tidy results, a plot, resumable output folders, shipped experiment files."""

import csv
from pathlib import Path

import pytest

from lengen.cli import main
from lengen.config_parse import default_experiment_path, load_experiment
from lengen.report.results import KEY_COLUMNS

REPO = Path(__file__).resolve().parents[1]

TINY = ["--task-arg", "k=1", "--task-arg", "noise_vocab=4", "--d-model", "32", "--layers", "1", "--heads", "2",
        "--steps", "40", "--batch-size", "32", "--min-len", "4", "--max-len", "8", "--eval-lengths", "8,16,64",
        "--samples", "32", "--quiet"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_tidy_results_and_a_plot(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "L=64" in printed
    rows = read_rows(out / "results.csv")
    assert list(rows[0])[: len(KEY_COLUMNS)] == KEY_COLUMNS
    assert [int(r["eval_len"]) for r in rows] == [8, 16, 64]
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 and r["n_eval"] == "32" for r in rows)
    assert {r["k"] for r in rows} == {"1"} and {r["scheme"] for r in rows} == {"nope"}
    assert (out / "accuracy_vs_length.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "experiment.yaml").is_file()


def test_rerun_into_the_same_folder_skips_finished_cells(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    first = (out / "results.csv").read_text()
    stamp = next(out.glob("cells/*/rows.json")).stat().st_mtime_ns
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert (out / "results.csv").read_text() == first
    assert next(out.glob("cells/*/rows.json")).stat().st_mtime_ns == stamp


def test_unwritable_output_folder_is_one_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["train", *TINY, "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lengen: error:") and err.count("\n") == 1


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "experiments").glob("*.yaml")))
def test_shipped_experiment_files_are_valid(name):
    cfg = load_experiment(REPO / "experiments" / name)
    assert cfg.cells()
    if name in ("default.yaml", "sparsity.yaml", "locality.yaml", "sweep24.yaml"):  # the lab's 8x rule
        assert max(cfg.eval.lengths) >= 8 * cfg.train.max_len


def test_embedded_default_matches_the_shipped_copy():
    assert (REPO / "experiments" / "default.yaml").read_text() == default_experiment_path().read_text()


def test_listing_commands(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "sparse_parity" in out and "k_min" in out and "window" in out
    assert main(["schemes"]) == 0
    out = capsys.readouterr().out
    for name in ("nope", "learned", "sinusoidal", "rope", "alibi", "fire", "t5_bias", "randomized"):
        assert f"  {name}:" in out


def test_cells_written_under_an_older_key_are_adopted_not_rerun(tmp_path):
    """Upgrading lengen (new options with defaults, another key scheme) resumes old runs."""
    import json

    from helpers import tiny_experiment

    from lengen.config_parse import parse_experiment
    from lengen.experiment import run_experiment

    cfg = parse_experiment(tiny_experiment(train={"steps": 20}))
    run_experiment(cfg, tmp_path, progress=False, report=False)
    (folder,) = (tmp_path / "cells").iterdir()
    legacy = folder.rename(tmp_path / "cells" / "written_by_an_older_lengen")
    saved = json.loads((legacy / "cell.json").read_text())
    saved["train"].pop("compile", None)  # an option that older versions did not have
    (legacy / "cell.json").write_text(json.dumps(saved))
    stamp = (legacy / "rows.json").stat().st_mtime_ns
    run_experiment(cfg, tmp_path, progress=False, report=False)
    assert [p.name for p in (tmp_path / "cells").iterdir()] == [folder.name]
    assert (folder / "rows.json").stat().st_mtime_ns == stamp


def test_quick_without_a_quick_section_is_one_clear_error(capsys):
    assert main(["run", str(REPO / "experiments" / "sparsity.yaml"), "--quick"]) == 2
    assert "quick" in capsys.readouterr().err
    assert main(["run", "--quick"]) == 2
    assert "--quick needs an experiment file" in capsys.readouterr().err
