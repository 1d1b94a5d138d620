"""Sweeps: parallel cells, resume after kill -9 with exactly the uninterrupted rows, Ray equals local."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import tiny_experiment

from lengen.cli import main
from lengen.config_parse import parse_experiment
from lengen.errors import LengenError
from lengen.report.results import read_csv
from lengen.sweep import check_reachable, run_sweep

WALL = {"train_wall_s", "eval_wall_s"}  # timings differ run to run; every other column must not


def numbers(rows):
    return [{k: v for k, v in r.items() if k not in WALL} for r in rows]


def sweep_file(tmp_path, **overrides):
    path = tmp_path / "sweep.yaml"
    raw = tiny_experiment(**overrides)
    raw.update({k: v for k, v in overrides.items() if v in ({}, [])})  # tiny_experiment merges dicts
    path.write_text(yaml.safe_dump(raw))
    return path


GRID = {"grid": {"k": [1, 2]}, "seeds": [0, 1]}  # 4 cells


def test_sweep_kill_9_then_resume_gives_exactly_the_uninterrupted_rows(tmp_path):
    overrides = {**GRID, "train": {"steps": 100, "checkpoint_every": 20}}
    path = sweep_file(tmp_path, **overrides)
    out = tmp_path / "killed"
    cmd = [str(Path(sys.executable).parent / "lengen"), "sweep", str(path), "--out", str(out), "--workers", "2", "--quiet",
           "--no-report"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(out.glob("cells/*/rows.json"))) >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes, mid-way
    proc.wait()
    done = list(out.glob("cells/*/rows.json"))
    assert 1 <= len(done) < 4, "the kill should land mid-sweep"
    if (out / "results.csv").is_file():  # whatever was merged holds only whole cells
        assert len(read_csv(out / "results.csv")) % 2 == 0
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2", "--quiet", "--no-report"]) == 0
    resumed = read_csv(out / "results.csv")

    cfg = parse_experiment(tiny_experiment(**overrides))
    run_sweep(cfg, tmp_path / "clean", workers=1, progress=False, report=False)
    clean = read_csv(tmp_path / "clean" / "results.csv")
    assert len(clean) == 4 * 2
    assert numbers(resumed) == numbers(clean)


def test_lengen_run_writes_results_summary_and_report_and_skips_finished_cells(tmp_path):
    path = sweep_file(tmp_path, grid={"k": [1]}, seeds=[0, 1])
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    rows = read_csv(out / "results.csv")
    assert len(rows) == 2 * 2 and {r["seed"] for r in rows} == {0, 1}
    for name in ("summary.csv", "report.html", "accuracy_vs_length.png", "environment.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "environment.json").read_text())["cell_threads"] == 1  # two cells: one thread each
    # every finished cell is skipped on a rerun: nothing is retrained, the rows are the same
    before = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/checkpoint/state.json")}
    cfg = parse_experiment(yaml.safe_load(path.read_text()))
    assert numbers(run_sweep(cfg, out, workers=2, progress=False, report=False)) == numbers(rows)
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("cells/*/checkpoint/state.json")}


def test_ray_backend_gives_the_local_numbers(tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'lengen[ray]')")
    cfg = parse_experiment(tiny_experiment(grid={"k": [1, 2]}, seeds=[0]))
    local = run_sweep(cfg, tmp_path / "local", workers=1, progress=False, report=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(cfg, tmp_path / "ray", backend="ray", progress=False, report=False)
    finally:
        ray.shutdown()
    assert numbers(remote) == numbers(local)
    assert numbers(read_csv(tmp_path / "ray" / "results.csv")) == numbers(read_csv(tmp_path / "local" / "results.csv"))


def one_error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("lengen: error:"), err
    return err


@pytest.mark.parametrize("overrides,message", [
    ({"grdi": {"k": [1]}}, "unknown key 'grdi' (did you mean 'grid'?)"),
    ({"grid": {"k": []}}, "grid.k: expected a non-empty list"),
    ({"grid": {}}, "grid is empty"),
    ({"schemes": []}, "schemes is empty"),
    ({"seeds": []}, "seeds is empty"),
])
def test_bad_sweep_files_give_one_line(tmp_path, capsys, overrides, message):
    err = one_error_line(capsys, ["sweep", str(sweep_file(tmp_path, **overrides)), "--out", str(tmp_path / "o")])
    assert message in err
    assert not (tmp_path / "o").exists()


def test_unreachable_ray_address_fails_fast_and_keeps_earlier_results(tmp_path, capsys):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'lengen[ray]')")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("earlier results\n")
    start = time.perf_counter()
    err = one_error_line(capsys, ["sweep", str(sweep_file(tmp_path)), "--out", str(out), "--backend", "ray",
                                  "--address", "127.0.0.1:9"])
    assert time.perf_counter() - start < 15
    assert "no Ray cluster answers at 127.0.0.1:9" in err
    assert (out / "results.csv").read_text() == "earlier results\n"
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]
    with pytest.raises(LengenError, match="not HOST:PORT"):
        check_reachable("nonsense")


def test_gpus_per_cell_outside_ray_is_one_line(tmp_path, capsys):
    err = one_error_line(capsys, ["sweep", str(sweep_file(tmp_path)), "--out", str(tmp_path / "o"),
                                  "--gpus-per-cell", "1"])  # was: silently ignored by the local backend
    assert "--gpus-per-cell is only used with --backend ray, got 1.0" in err
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = one_error_line(capsys, ["sweep", str(sweep_file(tmp_path)), "--out", str(Path(blocker) / "out")])
    assert "is not writable" in err
    assert blocker.read_text() == "x"
