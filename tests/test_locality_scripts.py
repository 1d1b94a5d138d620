"""The locality-window analysis scripts (docs/locality_scripts) on a tiny run: their tables are
recomputable from results.csv, and the cross-evaluation's diagonal repeats the run's own scores."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import yaml
from helpers import tiny_experiment

from lengen.cli import main

SCRIPTS = Path(__file__).resolve().parent.parent / "docs" / "locality_scripts"


def tiny_locality_run(tmp_path: Path) -> Path:
    raw = tiny_experiment(experiment="tiny-locality", task_args={"noise_vocab": 4, "k": 2},
                          grid={"window": [2, None]}, seeds=[0, 1],
                          train={"select": "last"}, eval={"lengths": [8, 40, 80, 160, 320], "samples": 32,
                                                          "learned_bar": 0.01})
    path = tmp_path / "loc.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--workers", "1", "--no-size-check"]) == 0
    return out


def script(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_window_table_and_cross_eval_agree_with_results(tmp_path):
    run = tiny_locality_run(tmp_path)
    with open(run / "results.csv") as f:
        rows = list(csv.DictReader(f))
    acc = {(r["window"] or "anywhere", r["seed"], int(r["eval_len"])): float(r["accuracy"]) for r in rows}
    table = script("window_table.py", str(run))
    # the paired difference at 320 is the seed mean of (window 2 - anywhere), from results.csv
    expected = sum(acc["2", s, 320] - acc["anywhere", s, 320] for s in ("0", "1")) / 2
    paired = table.split("Paired by seed")[1]
    line = next(ln for ln in paired.splitlines() if ln.startswith("| nope | 2 |"))
    assert float(line.split("|")[5].split()[0]) == float(f"{expected:.3f}")
    cross = script("cross_eval.py", str(run), "--lengths", "40", "--samples", "32")
    # the diagonal (trained and tested on the same window) repeats the run's own mean score
    for window in ("2", "anywhere"):
        line = next(ln for ln in cross.splitlines() if ln.startswith(f"| {window} |"))
        cols = [c.strip() for c in line.strip("|").split("|")][1:]
        diagonal = cols[0 if window == "2" else 1]
        mean = float(re.match(r"[-\d.]+", diagonal).group())
        assert abs(mean - (acc[window, "0", 40] + acc[window, "1", 40]) / 2) < 1e-3
    # the within-model difference covers every model of the scheme (2 windows x 2 seeds)
    same_model = cross.split("same model")[1]
    assert re.search(r"\| nope \| [-+][\d.]+ \[[-+][\d.]+, [-+][\d.]+\] \| 4 \|", same_model), same_model
