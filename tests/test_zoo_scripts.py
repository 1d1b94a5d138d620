"""docs/zoo_scripts/exact_table.py on a hand-written results.csv: sides pool their labels, steps, L*
per seed and the mean exact match at each multiple of the training length come from the rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lengen.report.results import write_csv

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "zoo_scripts" / "exact_table.py"


def test_exact_table_from_rows(tmp_path):
    rows = []
    for task, scheme, seed, steps, l_star, exact in (("copy", "coupled", 0, 200, 24, (1.0, 0.8)),
                                                    ("copy", "coupled", 1, 300, 48, (1.0, 0.6)),
                                                    ("copy", "rope", 0, 5000, 12, (0.0, 0.0)),
                                                    ("sort", "ppc", 0, 1700, 16, (0.2, 0.0)),
                                                    ("sort", "nope", 0, 10, 0, (0.0, 0.0))):
        for n, e in zip((24, 48), exact, strict=True):
            rows.append({"task": task, "scheme": scheme, "seed": seed, "train_max_len": 12, "eval_len": n,
                         "exact_match": e, "train_steps": steps, "l_star": l_star, "learned": True})
    write_csv(tmp_path / "results.csv", rows)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout
    assert "| copy | 2/2, 200-300, 24, 48 | 1.00 / 0.70 | 1/1, 5000-5000, 12 | 0.00 / 0.00 |" in out
    assert "| sort | 1/1, 1700-1700, 16 | 0.20 / 0.00 | - | - |" in out  # nope is on neither side
    missing = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no results.csv" in missing.stderr
