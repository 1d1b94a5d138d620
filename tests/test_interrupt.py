"""Stopping `lengen run` stops its worker processes too: no orphan keeps training after it."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import tiny_experiment


def children_of(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_run_stops_its_workers(tmp_path, sig):
    exp = tiny_experiment(grid={"k": [1, 2]}, train={"steps": 100000, "target_accuracy": None})
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    proc = subprocess.Popen([sys.executable, "-m", "lengen", "run", str(tmp_path / "exp.yaml"), "--out",
                             str(tmp_path / "out"), "--workers", "2", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(workers) < 2:  # wait until both workers train
            workers = {c for c in children_of(proc.pid)
                       if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(errors="ignore")
                       and any((tmp_path / "out" / "cells").glob("*/cell.json"))}
            time.sleep(0.5)
        assert len(workers) == 2, "workers did not start"
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline and any(alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(alive(w) for w in workers)
        if sig == signal.SIGTERM:
            assert proc.returncode == 130 and "interrupted" in err
    finally:  # never leave a training process behind, whatever failed above
        for pid in [proc.pid, *workers, *children_of(proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
