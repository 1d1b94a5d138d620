"""Issue 16: every bad input gets one clear line, no run escapes its folder, nothing is lost.

Each test is one case from the issue's list; the mutation battery is in test_config_battery.py.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_experiment

import lengen.backends.local
import lengen.cli.diagnose
import lengen.experiment
import lengen.io
from lengen.checkpoint import MODEL_FILE, first_mismatch, save_checkpoint
from lengen.cli import main
from lengen.config_parse import parse_experiment
from lengen.errors import ConfigError, LengenError
from lengen.experiment import run_experiment
from lengen.model import ModelConfig, Transformer
from lengen.positions import Dims, make_scheme
from lengen.run_folder import clean_stale_temp
from lengen.sizes import check_sizes
from lengen.validate import short_repr
from lengen.yaml_input import MAX_NODES, load_yaml


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("lengen: error: "), err
    assert "Traceback" not in err
    return err


def write_exp(path: Path, **overrides: object) -> Path:
    path.write_text(yaml.safe_dump(tiny_experiment(**overrides)))
    return path


# --- wrong types and ranges: one line naming the key path and the expected type ---------------------

@pytest.mark.parametrize("overrides,expected", [
    ({"train": {"steps": "many"}}, "train.steps: expected an integer, got 'many'"),
    ({"train": {"steps": 12.5}}, "train.steps: expected an integer, got 12.5"),
    ({"model": {"d_model": "big"}}, "model.d_model: expected an integer, got 'big'"),
    ({"train": {"lr": "fast"}}, "train.lr: expected a number, got 'fast'"),
    ({"eval": {"lengths": 40}}, "eval.lengths: expected a list of integers or a mapping, got 40"),
    ({"train": {"target_accuracy": "high"}}, "train.target_accuracy: expected a number or null"),
    ({"train": {"lr": float("inf")}}, "train.lr: expected a finite number"),
    ({"schemes": [{"position": "rope", "train": {"steps": "x"}}]}, "schemes[0].train.steps: expected an integer"),
    ({"task_args": {"noise_vocab": 2.5}}, "parameter noise_vocab: expected an integer, got 2.5"),
    ({"seeds": [-1]}, "seeds: every seed must be >= 0"),
])
def test_wrong_types_are_one_line_with_the_key_path(tmp_path, capsys, overrides, expected):
    err = one_line_error(capsys, ["run", str(write_exp(tmp_path / "e.yaml", **overrides)),
                                  "--out", str(tmp_path / "out")])
    assert expected in err
    assert not (tmp_path / "out").exists()


def test_steps_12_5_is_refused_not_truncated():
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer, got 12\.5"):
        parse_experiment(tiny_experiment(train={"steps": 12.5}))


# --- sizes beyond the machine are refused before anything is allocated ----------------------------

@pytest.mark.parametrize("overrides,what", [
    ({"model": {"d_model": 1_000_000_000, "n_heads": 1}}, "for training"),
    ({"model": {"n_layers": 10 ** 12}}, "parameters"),
    ({"eval": {"lengths": [10 ** 9]}}, "evaluation at length 1000000000"),
    ({"train": {"batch_size": 10 ** 9}}, "for training"),
    ({"idealized": 10 ** 12}, "for training"),
    ({"idealized": 100, "eval": {"samples": 10 ** 12}}, "for evaluation"),
])
def test_sizes_beyond_the_machine_are_refused_fast(tmp_path, capsys, overrides, what):
    start = time.perf_counter()
    err = one_line_error(capsys, ["run", str(write_exp(tmp_path / "e.yaml", **overrides)),
                                  "--out", str(tmp_path / "out")])
    assert time.perf_counter() - start < 10
    assert what in err and "--no-size-check" in err and "memory" in err
    assert not (tmp_path / "out").exists()


def test_size_check_passes_the_tiny_experiment_and_counts_parameters_exactly():
    cfg = parse_experiment(tiny_experiment())
    check_sizes(cfg)  # nothing raised on this machine
    with pytest.raises(ConfigError, match="more than this machine's"):
        check_sizes(cfg, memory=1000)  # a 1000-byte machine fits nothing
    from lengen.sizes import parameter_count

    model_cfg = cfg.cells()[0].model
    assert parameter_count(model_cfg) == sum(p.numel() for p in Transformer(model_cfg).parameters())


def test_no_size_check_flag_skips_the_check(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("lengen.sizes.check_sizes", lambda cfg: calls.append(cfg))
    monkeypatch.setattr(lengen.experiment, "run_experiment", lambda *a, **k: [])
    path = write_exp(tmp_path / "e.yaml")
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--no-size-check", "--quiet"]) == 0
    assert calls == []
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert len(calls) == 1


# --- YAML alias bombs and unbounded reprs ---------------------------------------------------------

def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\ntask: sparse_parity\n"


def test_a_1kb_alias_bomb_fails_fast(tmp_path, capsys):
    text = alias_bomb()
    assert len(text) < 1024
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    start = time.perf_counter()
    err = one_line_error(capsys, ["run", str(path), "--out", str(tmp_path / "out")])
    assert time.perf_counter() - start < 1.0
    assert f"more than {MAX_NODES:,} values" in err and len(err) < 300


def test_a_key_written_twice_is_one_line_and_merge_overrides_still_work(tmp_path, capsys):
    path = tmp_path / "e.yaml"
    text = yaml.safe_dump(tiny_experiment())
    path.write_text(text + "task: copy\n")  # was: silently the last one (copy)
    err = one_line_error(capsys, ["run", str(path), "--dry-run"])
    assert "key 'task' is written twice in one mapping (lines" in err and "; keep one" in err
    assert load_yaml("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 3\n") == {"base": {"a": 1, "b": 2},
                                                                          "x": {"a": 3, "b": 2}}


def test_aliases_within_the_bound_still_work():
    assert load_yaml("x: &x {k: 1}\ny: *x\n") == {"x": {"k": 1}, "y": {"k": 1}}
    with pytest.raises(ConfigError, match="refers to itself"):
        load_yaml("a: &a [*a]\n")


def test_user_values_are_never_shown_unbounded(tmp_path, capsys):
    err = one_line_error(capsys, ["run", str(write_exp(tmp_path / "e.yaml", train={"steps": "x" * 100_000})),
                                  "--out", str(tmp_path / "out")])
    assert len(err) < 300
    assert short_repr(list(range(10 ** 6))) == "<list of 1000000 items>"


# --- names and output folders ---------------------------------------------------------------------

@pytest.mark.parametrize("name,why", [
    ("../../x", "hidden or parent folder"),
    ("/tmp/anywhere", "contains '/'"),
    ("", "the name is empty"),
    ("a/b", "contains '/'"),
    ("..", "hidden or parent folder"),
    ("a\\b", "contains"),
])
def test_experiment_names_cannot_escape_runs(tmp_path, capsys, monkeypatch, name, why):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    path = write_exp(tmp_path / "e.yaml", experiment=name)
    err = one_line_error(capsys, ["run", str(path)])
    assert why in err
    err = one_line_error(capsys, ["train", "--name", name, "--steps", "5"])
    assert why in err
    assert snapshot(tmp_path) == {**before, "e.yaml": path.read_bytes()}
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("setup, extra, message", [
    ("empty", [], "the experiment file is empty (it needs at least a task: key)"),  # was: "got NoneType"
    ("folder", [], "is a folder; give a YAML file"),  # was: "experiment file not found"
    ("unreadable", [], "could not be read: Input/output error"),  # was: a traceback
    ("tiny", ["--workers", "0"], "--workers must be at least 1, got 0"),  # was: silently one per core
    ("out is a file", ["--dry-run"], "is a file"),  # was: exit 0 (the run itself refuses it)
])
def test_bad_experiment_files_and_workers_are_one_line(tmp_path, capsys, monkeypatch, command, setup, extra,
                                                       message):
    work = tmp_path / "work"  # what must stay untouched (the input itself may not be readable)
    work.mkdir()
    (work / "kept.txt").write_text("kept")
    monkeypatch.chdir(work)
    path = tmp_path / "e.yaml"
    if setup == "empty":
        path.write_text("")
    elif setup == "folder":
        path.mkdir()
    elif setup == "unreadable":
        if not Path("/proc/self/mem").exists():
            pytest.skip("no /proc/self/mem (a regular file whose read fails) on this system")
        path.symlink_to("/proc/self/mem")
    else:
        write_exp(path)
    if setup == "out is a file":
        (work / "o").write_text("a file")
    before = snapshot(work)
    assert message in one_line_error(capsys, [command, str(path), "--out", str(work / "o"), *extra])
    assert snapshot(work) == before and (setup == "out is a file" or not (work / "o").exists())


@pytest.mark.parametrize("argv, message", [
    (["check", "d.txt", "--context", "abc", "--out", "o"], "lengen check: argument --context: invalid int value"),
    (["check", "d.txt"], "the following arguments are required: --out (see lengen check --help)"),
    (["run", "--workers", "many"], "lengen run: argument --workers: invalid int value: 'many'"),
    (["diagnose", "--model", "m", "--screen", "x"], "argument --screen: invalid choice: 'x'"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_argparse_errors_are_one_line_too(capsys, argv, message):
    with pytest.raises(SystemExit) as ended:
        main(argv)
    err = capsys.readouterr().err
    assert ended.value.code == 2 and err.count("\n") == 1 and err.startswith("lengen: error: "), err
    assert message in err and "usage:" not in err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("finished") / "run"
    cfg = parse_experiment(tiny_experiment(train={"steps": 20, "checkpoint_every": 10}))
    run_experiment(cfg, out, workers=1, progress=False, report=False)
    return out


def copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_a_different_experiment_is_refused_and_nothing_changes(finished_run, tmp_path, capsys):
    out = copy_tree(finished_run, tmp_path / "run")
    before = snapshot(tmp_path)
    path = write_exp(tmp_path / "other.yaml", train={"steps": 30, "checkpoint_every": 10})
    before["other.yaml"] = path.read_bytes()
    err = one_line_error(capsys, ["run", str(path), "--out", str(out)])
    assert "holds a different experiment" in err and "train.steps: 20 in the folder, 30 now" in err
    assert "--force" in err
    assert snapshot(tmp_path) == before


def test_an_experiment_with_cells_added_resumes_and_trains_only_the_new_ones(finished_run, tmp_path, capsys):
    # more seeds for a finished run: the cell already there is kept as it is, only seed 1 is trained,
    # and results.csv and experiment.yaml cover both; dropping a cell again is a different experiment
    out = copy_tree(finished_run, tmp_path / "run")
    old_cell = next((out / "cells").iterdir())
    kept = snapshot(old_cell)
    more = write_exp(tmp_path / "more.yaml", seeds=[0, 1], train={"steps": 20, "checkpoint_every": 10})
    assert main(["run", str(more), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    assert snapshot(old_cell) == kept
    assert len(list((out / "cells").iterdir())) == 2
    with (out / "results.csv").open() as f:
        assert {row["seed"] for row in csv.DictReader(f)} == {"0", "1"}
    assert yaml.safe_load((out / "experiment.yaml").read_text())["seeds"] == [0, 1]
    fewer = write_exp(tmp_path / "fewer.yaml", seeds=[1], train={"steps": 20, "checkpoint_every": 10})
    capsys.readouterr()
    err = one_line_error(capsys, ["run", str(fewer), "--out", str(out)])
    assert "holds a different experiment" in err and "seeds" in err


def test_force_moves_the_old_run_aside(finished_run, tmp_path, capsys, monkeypatch):
    out = copy_tree(finished_run, tmp_path / "run")
    old = snapshot(out)
    cfg = parse_experiment(tiny_experiment(experiment="other", train={"steps": 20, "checkpoint_every": 10}))
    with pytest.raises(LengenError, match="experiment: 'tiny' in the folder, 'other' now"):
        run_experiment(cfg, out, workers=1, progress=False, report=False)
    run_experiment(cfg, out, workers=1, progress=False, report=False, force=True)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and snapshot(aside[0]) == old  # the old run, byte for byte
    assert yaml.safe_load((out / "experiment.yaml").read_text())["experiment"] == "other"


def test_same_experiment_still_resumes_and_ignores_workers(finished_run, tmp_path):
    out = copy_tree(finished_run, tmp_path / "run")
    rows = (out / "results.csv").read_bytes()
    raw = tiny_experiment(train={"steps": 20, "checkpoint_every": 10}, workers=3, description="changed")
    run_experiment(parse_experiment(raw), out, workers=1, progress=False, report=False)
    assert (out / "results.csv").read_bytes() == rows


def test_a_folder_with_results_but_no_config_is_refused(tmp_path):
    (tmp_path / "results.csv").write_text("keep me\n")
    with pytest.raises(LengenError, match="results.csv but no experiment.yaml"):
        run_experiment(parse_experiment(tiny_experiment()), tmp_path, workers=1, progress=False)
    assert (tmp_path / "results.csv").read_text() == "keep me\n"


def test_stale_temp_files_are_cleaned_on_start(finished_run, tmp_path):
    out = copy_tree(finished_run, tmp_path / "run")
    cell = next((out / "cells").iterdir())
    stale = [out / ".results.csv.abc123.tmp", cell / ".rows.json.xyz.tmp"]
    for p in stale:
        p.write_text("half")
    (cell / "checkpoint.tmp").mkdir()
    keep = out / "notes.tmp"  # not lengen's naming: kept
    keep.write_text("mine")
    run_experiment(parse_experiment(tiny_experiment(train={"steps": 20, "checkpoint_every": 10})), out,
                   workers=1, progress=False, report=False)
    assert not any(p.exists() for p in stale) and not (cell / "checkpoint.tmp").exists()
    assert keep.read_text() == "mine"
    assert clean_stale_temp(out) == []


# --- checkpoints ------------------------------------------------------------------------------------

def test_checkpoint_of_another_configuration_is_one_line_on_resume(finished_run, tmp_path, capsys):
    out = copy_tree(finished_run, tmp_path / "run")
    cell = next((out / "cells").iterdir())
    (cell / "rows.json").unlink()  # the cell must resume from its checkpoint
    state = json.loads((cell / "checkpoint" / "state.json").read_text())
    state["finished"] = False
    (cell / "checkpoint" / "state.json").write_text(json.dumps(state))
    wide = Transformer(ModelConfig(vocab_size=7, d_model=64, n_layers=1, n_heads=2))
    save_checkpoint(tmp_path / "wide", wide, None, {})
    (cell / "checkpoint" / MODEL_FILE).write_bytes((tmp_path / "wide" / MODEL_FILE).read_bytes())
    env = (out / "environment.json").read_bytes()
    path = write_exp(tmp_path / "e.yaml", train={"steps": 20, "checkpoint_every": 10})
    err = one_line_error(capsys, ["run", str(path), "--out", str(out), "--workers", "1"])
    assert "its weights do not fit this model's configuration: tensor embed.weight is (7, 64) in the " \
           "checkpoint, (" in err
    assert (out / "environment.json").read_bytes() == env  # a failed resume keeps the old record


def test_first_mismatch_names_missing_extra_and_shape():
    a = {"x": torch.zeros(2, 3), "y": torch.zeros(1)}
    assert first_mismatch(a, {"x": torch.zeros(2, 3), "y": torch.zeros(1)}) is None
    assert first_mismatch(a, {"x": torch.zeros(3, 3), "y": torch.zeros(1)}) == \
        "tensor x is (2, 3) in the checkpoint, (3, 3) in the model"
    assert "tensor z (4,) is missing" in first_mismatch(a, {**a, "z": torch.zeros(4)})
    assert "has tensor y (1,), which the model lacks" in first_mismatch(a, {"x": torch.zeros(2, 3)})


def test_checkpoints_and_results_are_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else "?")
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    model = Transformer(ModelConfig(vocab_size=7, d_model=16, n_layers=1, n_heads=2))
    opt = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 3, dtype=torch.long), torch.arange(3)[None]).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "ckpt", model, opt, {"step": 1})
    names = {Path(p).name for p in synced}
    assert {"model.safetensors", "optimizer.safetensors", "ckpt.tmp", tmp_path.name} <= names
    synced.clear()
    lengen.io.atomic_write_text(tmp_path / "results.csv", "a\n")
    assert any(p.endswith(".tmp") for p in synced) and str(tmp_path) in synced  # the file, then its folder


# --- a worker process dying mid-sweep -------------------------------------------------------------

def test_a_dead_worker_is_one_line_naming_its_cell_and_the_sweep_resumes(tmp_path, capsys, monkeypatch):
    import helpers

    path = write_exp(tmp_path / "e.yaml", seeds=[0, 1], train={"steps": 20, "checkpoint_every": 10})
    out = tmp_path / "run"
    monkeypatch.setattr(lengen.backends.local, "_run_job_in_worker", helpers.run_or_die_for_seed_1)
    err = one_line_error(capsys, ["run", str(path), "--out", str(out), "--workers", "2", "--quiet"])
    cells = {c.seed: c.key for c in parse_experiment(yaml.safe_load(path.read_text())).cells()}
    assert f"a worker process died while running cell {cells[1]} (" in err and "resume" in err
    done = out / "cells" / cells[0] / "rows.json"
    assert done.is_file() and not (out / "cells" / cells[1] / "rows.json").exists()
    stamp = done.stat().st_mtime_ns
    monkeypatch.undo()
    assert main(["run", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert done.stat().st_mtime_ns == stamp  # the finished cell was kept, not rerun
    assert (out / "cells" / cells[1] / "rows.json").is_file()


# --- wrong results without an error -----------------------------------------------------------------

def test_fire_threshold_has_a_gradient_at_init_and_moves_in_training():
    torch.manual_seed(0)
    fire = make_scheme("fire", Dims(16, 2))
    ids = torch.arange(20)[None]
    fire.bias(ids, ids).pow(2).sum().backward()
    grad = fire.threshold_multiplier.grad
    assert grad is not None and grad.abs().item() > 0
    start = fire.threshold().item()
    assert start == 512.0  # Li et al.'s initial L
    cfg = parse_experiment(tiny_experiment(schemes=["fire"], train={"steps": 30}))
    from lengen.train import train

    result = train(cfg.cells()[0], progress=False)
    assert abs(result.model.positions.threshold().item() - start) > 1e-3


def test_t5_bias_with_a_tied_position_head_is_refused_at_validation():
    raw = tiny_experiment(schemes=[{"position": "t5_bias", "model": {"position_head": True,
                                                                     "position_head_tied": True,
                                                                     "position_classes": 64}}])
    with pytest.raises(ConfigError, match="position_head_tied needs a scheme with a learned id table"):
        parse_experiment(raw)


def test_schemes_hint_is_pasteable(capsys):
    assert main(["schemes"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("schemes:"))
    raw = tiny_experiment(schemes=yaml.safe_load(line)["schemes"])
    assert [s.position for s in parse_experiment(raw).schemes] == ["nope", "rope", "fire"]


def test_diagnose_task_args_apply_to_the_checkpoints_task(finished_run, tmp_path, capsys):
    cell = next((finished_run / "cells").iterdir())
    out = tmp_path / "diag"
    argv = ["diagnose", "--model", str(cell), "--length", "6", "--budget", "4", "--out", str(out),
            "--no-progress", "--no-truncation"]
    assert main([*argv, "--task-arg", "noise_vocab=5"]) == 2  # the vocabulary grows: refused, not ignored
    assert "task sparse_parity has 8 tokens but the model only 7" in capsys.readouterr().err
    assert main([*argv, "--task-arg", "k=1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scored_tokens"] == 4
    err = one_line_error(capsys, [*argv, "--text", str(tmp_path / "x.txt"), "--task-arg", "k=1"])
    assert "--task-arg applies to task data" in err


def test_diagnose_writes_its_summary_atomically(finished_run, tmp_path, monkeypatch):
    written: list[str] = []
    real = lengen.io.atomic_write_text
    # the command imports the writer at its top, so the name to replace is the command module's
    monkeypatch.setattr(lengen.cli.diagnose, "atomic_write_text", lambda p, t: (written.append(Path(p).name), real(p, t)))
    cell = next((finished_run / "cells").iterdir())
    assert main(["diagnose", "--model", str(cell), "--length", "6", "--budget", "2", "--out", str(tmp_path / "d"),
                 "--no-progress", "--no-truncation"]) == 0
    assert "summary.json" in written


def test_diagnose_of_a_checkpoint_with_other_tensors_is_one_line(finished_run, tmp_path, capsys):
    cell = copy_tree(next((finished_run / "cells").iterdir()), tmp_path / "cell")
    wide = Transformer(ModelConfig(vocab_size=7, d_model=64, n_layers=1, n_heads=2))
    save_checkpoint(tmp_path / "wide", wide, None, {})
    (cell / "checkpoint" / MODEL_FILE).write_bytes((tmp_path / "wide" / MODEL_FILE).read_bytes())
    err = one_line_error(capsys, ["diagnose", "--model", str(cell), "--out", str(tmp_path / "d"), "--no-progress"])
    assert "tensor embed.weight is (7, 64) in the checkpoint, (7, 32) in the model" in err
