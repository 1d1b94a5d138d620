"""DDP: two CPU processes (gloo) at global batch B train like one process at batch B.

Each rank keeps its own half of every global batch (distinct samples), gradients are averaged by
DistributedDataParallel. The logged loss per check window must match single-process training within
an absolute 1e-4 (only floating-point reduction order differs), and the final weights within 1e-4.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_experiment

from lengen.checkpoint import load_model
from lengen.config_parse import parse_experiment
from lengen.distributed import DataSplit
from lengen.train import train

TOLERANCE = 1e-4


def torchrun():
    path = Path(sys.executable).parent / "torchrun"
    return str(path) if path.exists() else shutil.which("torchrun")


def test_each_rank_gets_a_distinct_slice_of_the_global_batch():
    cell = parse_experiment(tiny_experiment()).cells()[0]
    import numpy as np

    batch = cell.build_task().sample(np.random.default_rng(0), 8, 6)
    halves = [DataSplit(r, 2).shard(batch) for r in (0, 1)]
    assert [h.tokens.shape[0] for h in halves] == [4, 4]
    assert torch.equal(torch.cat([h.tokens for h in halves]), batch.tokens)
    assert torch.equal(torch.cat([h.answer_index for h in halves]), batch.answer_index)


def run_ddp(path: Path, out: Path) -> tuple[int, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "lengen.ddp", str(path), "--out", str(out),
           "--quiet", "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:  # never leave the ranks behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


@pytest.mark.skipif(torchrun() is None, reason="torchrun is not on PATH")
def test_two_process_ddp_matches_one_process_at_the_same_global_batch(tmp_path):
    raw = tiny_experiment(train={"threads": 1})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    code, err = run_ddp(path, out)
    assert code == 0, err[-2000:]
    cell = parse_experiment(raw).cells()[0]
    single = train(cell, progress=False)
    (cell_dir,) = (out / "cells").iterdir()
    state = json.loads((cell_dir / "checkpoint" / "state.json").read_text())
    assert [h["step"] for h in state["history"]] == [h["step"] for h in single.history]
    for d, s in zip(state["history"], single.history, strict=True):
        assert abs(d["loss"] - s["loss"]) < TOLERANCE, (d, s)
        assert abs(d["accuracy"] - s["accuracy"]) < 0.02
    weights = load_model(cell_dir).model.state_dict()
    assert all(torch.allclose(w, single.model.state_dict()[k], atol=TOLERANCE) for k, w in weights.items())
    assert (out / "results.csv").is_file() and (cell_dir / "rows.json").is_file()
    # the run went through lengen.experiment.run_experiment, as local runs do: its environment record,
    # its table, and its refusal of a folder that holds another experiment (every rank stops cleanly)
    assert json.loads((out / "environment.json").read_text())["backend"] == "ddp x2"
    assert (out / "table.txt").is_file() and (out / "experiment.yaml").is_file()
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(tiny_experiment(experiment="other", train={"threads": 1})))
    code, err = run_ddp(other, out)
    assert code != 0 and "lengen.ddp: error:" in err and "holds a different experiment" in err, err[-2000:]
    assert err.count("lengen.ddp: error:") == 1  # rank 0 alone reports; rank 1 was released


def test_a_process_that_ran_ddp_exits_with_its_code_and_flushed_output_without_finalizing():
    # torch keeps a DDP process group's worker threads alive after destroy_process_group; finalizing
    # the interpreter while one releases tensors aborted 3 runs in 46 (SIGABRT after the results
    # were written). exit_process skips finalization, but must keep the exit code and buffered output.
    script = ("import atexit, sys; import lengen.backends.ddp as d; d._JOINED_A_GROUP = True; "
              "atexit.register(lambda: print('finalized')); sys.stdout.write('kept'); "
              "sys.stderr.write('err kept'); d.exit_process(3)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "kept", "err kept")


def test_a_process_that_did_not_run_ddp_exits_normally():
    from lengen.backends.ddp import exit_process, joined_a_group

    assert not joined_a_group()
    with pytest.raises(SystemExit) as e:
        exit_process(4)
    assert e.value.code == 4
