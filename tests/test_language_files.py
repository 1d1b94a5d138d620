"""The language experiment files that restate experiments/language.yaml must not drift from it:
language_budget.yaml is language.yaml plus one scheme (so it extends a finished language.yaml run folder
and trains only the new models), language_shakespeare.yaml is language.yaml on another corpus."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lengen.config_parse import load_experiment
from lengen.run_folder import extends, identity

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


@pytest.mark.parametrize("quick", [False, True])
def test_budget_file_extends_language_with_the_longer_scheme_only(quick):
    base = load_experiment(EXPERIMENTS / "language.yaml", quick=quick)
    budget = load_experiment(EXPERIMENTS / "language_budget.yaml", quick=quick)
    assert extends(identity(budget), identity(base))  # a language.yaml run folder resumes with it
    added = [c for c in budget.cells() if c.key not in {b.key for b in base.cells()}]
    assert {c.scheme.label for c in added} == {"rope_pose_long"} and len(added) == len(base.seeds)
    shorter = next(c for c in base.cells() if c.scheme.label == "rope_pose")
    for cell in added:  # the same model in every setting but the budget, which is 3x
        assert cell.train.steps == 3 * shorter.train.steps
        assert cell.scheme.position == shorter.scheme.position and cell.model == shorter.model
        assert cell.train.pose_target_length == shorter.train.pose_target_length


@pytest.mark.parametrize("quick", [False, True])
def test_shakespeare_file_is_language_on_another_corpus(quick):
    base = load_experiment(EXPERIMENTS / "language.yaml", quick=quick).to_dict()
    other = load_experiment(EXPERIMENTS / "language_shakespeare.yaml", quick=quick).to_dict()
    assert other["task_args"]["corpus"] == "shakespeare" and base["task_args"]["corpus"] == "kjv"
    for d in (base, other):
        for key in ("experiment", "description"):
            d.pop(key)
        d["task_args"].pop("corpus")
    assert other == base


@pytest.mark.parametrize("quick", [False, True])
def test_language_reference_is_trained_with_holes_over_the_distant_range(quick):
    """The sufficiency measure restores a few distant tokens behind a gap of up to context - training
    length tokens; the planted check read k = 3 right only with a reference trained on such gaps and a
    share of 0.9 (docs/language.md, "Planted k = 3")."""
    cfg = load_experiment(EXPERIMENTS / "language.yaml", quick=quick)
    lang = cfg.language
    reference = next(c for c in cfg.cells() if c.scheme.label == lang.reference)
    short = next(c for c in cfg.cells() if c.scheme.label != lang.reference)
    assert reference.train.holes == lang.context - short.train.max_len
    assert lang.recover_share == 0.9


SCRIPT = ROOT / "docs" / "language_scripts" / "planted_k.py"


def test_planted_k_script_prints_one_row_per_planted_k():
    out = subprocess.run([sys.executable, str(SCRIPT), "--steps", "20", "--documents", "10", "--held-out", "1",
                          "--ks", "1", "3"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "3"]
    bad = subprocess.run([sys.executable, str(SCRIPT), "--ks", "9"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and "every k must be in" in bad.stderr and "Traceback" not in bad.stderr


def test_paired_share_from_hand_built_losses(tmp_path):
    """docs/language_scripts/paired_share.py: shares are seed means over the measured tokens relative to the
    reference's gain, and the paired interval of a constant difference is that constant."""
    import numpy as np

    (tmp_path / "language").mkdir()
    window, position = np.repeat(np.arange(4), 2), np.tile([5, 7], 4)
    np.savez(tmp_path / "language" / "sufficiency.npz", window=window, position=position)

    def cell(name, gain):
        folder = tmp_path / "cells" / name
        folder.mkdir(parents=True)
        long = np.zeros((4, 9))
        np.savez(folder / "language_losses.npz", long=long, near=long + gain)

    cell("reference_rope512_seed0_x", 2.0)
    cell("a_seed0_x", 0.2)
    cell("a_seed1_x", 0.6)  # seed mean 0.4: share 0.2
    cell("b_seed0_x", 1.0)  # share 0.5
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "language_scripts" / "paired_share.py"), str(tmp_path),
                          "a", "b", "--draws", "50"], capture_output=True, text=True, check=True).stdout
    assert "8 tokens, 4 windows; seeds 2 / 1" in out
    assert "a +0.200, b +0.500; b minus a +0.300 [+0.300, +0.300]" in out
