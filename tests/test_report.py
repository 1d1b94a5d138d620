"""Aggregation over seeds, computed conclusions, and the self-contained HTML report (opened in Chromium)."""

import math
import re
import shutil
import subprocess

import pytest
import yaml
from helpers import tiny_experiment

from lengen.cli import main
from lengen.report.aggregate import summarize, summary_rows, t975
from lengen.report.conclusions import THRESHOLD, conclusions, reach
from lengen.report.html import REPORT_FILE, write_report
from lengen.report.results import write_csv

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def synthetic_rows(seeds=(0, 1, 2)):
    """Accuracy that falls with k and with length, a little seed noise; rope worse than nope."""
    rows = []
    for scheme, penalty in (("nope", 0.0), ("rope", 0.15)):
        for k in (1, 2, 4):
            for seed in seeds:
                for n in (10, 20, 40, 80):
                    acc = 1.0 if n <= 20 else max(0.5, 1.0 - penalty - 0.04 * k * math.log2(n / 20))
                    acc = min(1.0, acc + 0.01 * seed) if acc < 1.0 else acc
                    rows.append({"experiment": "synthetic", "task": "sparse_parity", "scheme": scheme, "k": k,
                                 "window": None, "seed": seed, "train_min_len": 5, "train_max_len": 20,
                                 "eval_len": n, "accuracy": acc, "n_eval": 64, "exact_match": acc ** 2,
                                 "train_steps": 100, "train_accuracy": 1.0, "stopped_early": True,
                                 "train_wall_s": 1.0})
    return rows


def synthetic_run(path):
    write_csv(path / "results.csv", synthetic_rows())
    (path / "experiment.yaml").write_text(yaml.safe_dump({**tiny_experiment(), "description": "Does k matter?"}))
    return path


def test_t_interval_matches_hand_computation():
    s = summarize([0.5, 0.7, 0.9])
    half = 4.303 * 0.2 / math.sqrt(3)
    assert s.mean == pytest.approx(0.7) and s.n == 3
    assert s.low == pytest.approx(0.7 - half) and s.high == 1.0  # clipped to [0, 1]
    assert summarize([0.4, 0.6], lower=-1).low == pytest.approx(0.5 - 12.706 * math.sqrt(0.02) / math.sqrt(2))
    assert summarize([0.4, 0.6]).low == 0.0
    one = summarize([0.3])
    assert one.low == one.high == one.mean == 0.3
    assert [t975(d) for d in (1, 2, 10, 30, 1000)] == sorted([t975(d) for d in (1, 2, 10, 30, 1000)], reverse=True)


def test_summary_rows_cover_every_series_and_length():
    rows = summary_rows(synthetic_rows())
    assert len(rows) == 2 * 3 * 4
    assert all(r["ci_low"] <= r["accuracy_mean"] <= r["ci_high"] and r["seeds"] == 3 for r in rows)


def test_conclusions_follow_the_numbers():
    text = conclusions(synthetic_rows())
    assert f"{THRESHOLD:.2f}" in text[0]
    joined = "\n".join(text)
    # nope k=1: mean 0.97 at 40, 0.93 at 80; rope k=4: 0.70 at 40, already below at 40
    assert "nope, k=1: generalizes up to length 40 (2.0x); at 80 accuracy is 0.93" in joined
    assert "rope, k=4: holds up to length 20 only, within the training lengths; at 40 accuracy is 0.70" in joined
    assert "nope: the longest length it generalizes to shrinks as k grows (k=1: 40, k=2: 20, k=4: 20)" in joined
    assert "k=1: schemes ranked by how far they generalize: nope (to 40, mean beyond training 0.95), rope (to 20" \
        in joined
    perfect = [dict(r, accuracy=1.0) for r in synthetic_rows()]
    assert "generalizes to every evaluated length, up to 80 (4.0x" in "\n".join(conclusions(perfect))


def test_reach_is_the_longest_prefix_above_threshold():
    s = {n: summarize([a]) for n, a in ((10, 1.0), (20, 0.97), (40, 0.5), (80, 0.99))}
    assert reach(s) == 20
    assert reach({10: summarize([0.2])}) == 0


def test_report_is_self_contained_and_says_what_it_found(tmp_path):
    run = synthetic_run(tmp_path)
    page = write_report(run).read_text()
    assert "Does k matter?" in page and "Conclusions" in page and "Environment" in page
    assert page.count('src="data:image/png;base64,') == 4  # accuracy, exact match, two heatmaps
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing to fetch from the network
    for name in ("summary.csv", "heatmap_k.png", "heatmap_scheme.png"):
        assert (run / name).stat().st_size > 0


def test_cli_report(tmp_path, capsys):
    run = synthetic_run(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert (run / REPORT_FILE).is_file()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run folder not found" in err


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _open(url, tmp_path, *extra):
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium chromium-driver)")
def test_report_opens_in_headless_chromium_with_every_figure_loaded(tmp_path):
    run = synthetic_run(tmp_path / "run")
    url = write_report(run).resolve().as_uri()
    dom = _open(url, tmp_path, "--virtual-time-budget=5000", "--dump-dom").stdout
    # the page's own script counts images that decoded: loaded/total
    assert 'data-figures="4/4"' in dom, dom[-400:]
    shot = tmp_path / "report.png"
    _open(url, tmp_path, "--window-size=1200,3000", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    # the check can fail: a page with a broken figure reports it
    broken = run / "broken.html"
    page = (run / REPORT_FILE).read_text()
    broken.write_text(page.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    dom = _open(broken.resolve().as_uri(), tmp_path, "--virtual-time-budget=5000", "--dump-dom").stdout
    assert 'data-figures="3/4"' in dom


@pytest.mark.parametrize("command", ["report", "zoo-report"])
@pytest.mark.parametrize("content, message", [
    (b"task,\xff\n\"unterminated", "results.csv: not a readable CSV file (UnicodeDecodeError)"),  # was: a traceback
    (b"a,b\n1,2\n", "not a lengen results.csv (no column task, scheme, seed, eval_len, accuracy)"),  # was: KeyError
])
def test_a_results_csv_lengen_did_not_write_is_one_line(tmp_path, capsys, command, content, message):
    (tmp_path / "results.csv").write_bytes(content)
    assert main([command, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lengen: error: ") and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]
