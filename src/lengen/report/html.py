"""`report.html`: one self-contained page per run folder (figures embedded as base64, no network).

It reads only what a run leaves on disk (``experiment.yaml``, ``results.csv``, ``environment.json``),
so a page can be rebuilt at any time with ``lengen report RUN_DIR``. It also writes ``summary.csv``
(mean and 95% interval per series and length) and the heatmaps as PNG files next to it.
"""

from __future__ import annotations

import base64
import datetime
import html
import importlib.metadata
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lengen.errors import LengenError
from lengen.io import atomic_write_bytes, atomic_write_text
from lengen.report.aggregate import INTERVAL, summary_by_series, summary_rows
from lengen.report.conclusions import THRESHOLD, conclusions
from lengen.report.plots import render_accuracy_vs_length, render_curves, render_heatmap
from lengen.report.protocol import excluded_models, l_star_rows, rank_correlations, read_curves
from lengen.report.results import read_results, write_csv

REPORT_FILE = "report.html"
ENVIRONMENT_FILE = "environment.json"
_PACKAGES = ("lengen", "torch", "numpy", "matplotlib", "ray")

# marks <body data-figures="loaded/total"> once the page has loaded, so a headless browser can check it
_CHECK_FIGURES = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-figures", ok + "/" + imgs.length);
});
</script>"""

_STYLE = """<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 3px 7px; text-align: right; } th { background: #f4f4f4; }
td.l, th.l { text-align: left; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; } img { max-width: 100%; }
.note { color: #555; font-size: 0.9em; }
</style>"""


def environment() -> dict[str, Any]:
    """Versions and device of the current process (stored by a run; shown by the report)."""
    import torch

    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    else:
        device = f"cpu: {platform.processor() or platform.machine()}"
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "device": device, "torch_threads": torch.get_num_threads(), "versions": versions,
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(header: Sequence[str], body: Sequence[Sequence[Any]], left: int = 0) -> str:
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{html.escape('' if v is None else str(v))}</{tag}>"

    head = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr>"
    rows = ["<tr>" + "".join(cell("td", i, v) for i, v in enumerate(line)) + "</tr>" for line in body]
    return "<table>" + head + "".join(rows) + "</table>"


def _summary_table(rows: Sequence[dict[str, Any]]) -> str:
    cols, data = summary_by_series(rows)
    lengths = sorted({int(r["eval_len"]) for r in rows})
    body = []
    for key in sorted(data, key=lambda k: tuple(str(x) for x in k)):
        line: list[Any] = [*key]
        for n in lengths:
            s = data[key].get(n)
            line.append("-" if s is None else f"{s.mean:.3f}" if s.n == 1 else
                        f"{s.mean:.3f} [{s.low:.2f}, {s.high:.2f}]")
        body.append(line)
    return _table([*cols, *[f"L={n}" for n in lengths]], body, left=len(cols))


# columns that change with the evaluation length; the others identify a trained model
_PER_LENGTH = {"eval_len", "accuracy", "exact_match", "n_eval", "eval_wall_s", "token_accuracy"}


def _training_table(rows: Sequence[dict[str, Any]]) -> str:
    fields = ["scheme", "k", "window", "seed", "train_steps", "train_accuracy", "stopped_early", "train_wall_s"]
    fields = [f for f in fields if any(r.get(f) is not None for r in rows)]
    seen, body = set(), []
    for r in rows:
        ident = tuple(sorted((k, str(v)) for k, v in r.items() if k not in _PER_LENGTH))
        if ident not in seen:
            seen.add(ident)
            body.append([r.get(f) for f in fields])
    return _table(fields, body, left=1)


def _language_section(run_dir: Path) -> list[str]:
    """The language analysis (``lengen.text.analysis``), when the run has one: its summary and figures."""
    folder = run_dir / "language"
    summary = folder / "summary.md"
    if not summary.is_file():
        return []
    parts = ["<h2>Language: loss beyond the training context by sparsity bucket</h2>"]
    table: list[list[str]] = []
    for line in summary.read_text(encoding="utf-8").splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        if table:
            parts.append(_table(table[0], table[1:], left=1))
            table = []
        if line.strip():
            parts.append(f"<p>{html.escape(line)}</p>")
    for name, alt in (("loss_vs_position.png", "validation loss against position, one panel per scheme"),
                      ("loss_by_bucket.png", "loss increase beyond the training context per bucket")):
        if (folder / name).is_file():
            parts.append(_img((folder / name).read_bytes(), alt, alt[0].upper() + alt[1:] + "."))
    return parts


def _protocol_section(run_dir: Path, rows: Sequence[dict[str, Any]], excluded: Sequence[dict[str, Any]]) -> list[str]:
    """L* with intervals, its rank correlation with k, the models left out, and the training curves."""
    if not any("l_star" in r for r in rows):
        return []
    parts = ["<h2>L* (longest length held) and the models left out</h2>",
             '<p class="note">L*: the longest evaluated length up to which every length scores at least chance + '
             "0.8 (1 - chance) exact match (eval.l_star_level). Only models that reached the in-distribution bar "
             "(eval.learned_bar, exact match at the longest training length) are counted.</p>"]
    stars = l_star_rows(rows)
    write_csv(run_dir / "l_star.csv", stars, first=[])
    cols = [c for c in stars[0] if c not in ("l_star_mean", "ci_low", "ci_high", "models")]
    parts.append(_table([*cols, "L* mean", "95% interval", "models"],
                        [[*(s[c] for c in cols), s["l_star_mean"], f"[{s['ci_low']}, {s['ci_high']}]", s["models"]]
                         for s in stars], left=len(cols)))
    for corr in rank_correlations(rows):
        others = ", ".join(f"{k}={v}" for k, v in corr.items() if k not in
                           ("x", "spearman_mean", "ci_low", "ci_high", "seeds", "per_seed"))
        parts.append(f"<p>Spearman of {corr['x']} against L*{' (' + others + ')' if others else ''}: seed mean "
                     f"{corr['spearman_mean']:+.2f} [{corr['ci_low']:+.2f}, {corr['ci_high']:+.2f}] over "
                     f"{corr['seeds']} seeds; per seed {html.escape(json.dumps(corr['per_seed']))}.</p>")
    if excluded:
        parts.append(f"<p><b>Left out: {len(excluded)} model(s) that did not learn in distribution</b>: "
                     + html.escape("; ".join(", ".join(f"{k}={v}" for k, v in e.items()) for e in excluded)) + "</p>")
    else:
        parts.append("<p>Every model learned in distribution.</p>")
    png = render_curves(read_curves(run_dir), max(int(r["train_max_len"]) for r in rows))
    if png is not None:
        atomic_write_bytes(run_dir / "training_curves.png", png)
        parts.append(_img(png, "held-out exact match against training step",
                          "Held-out exact match over training (metrics.csv of every cell, mean over cells): at the "
                          "longest training length, which stopping reads, and at longer lengths."))
    return parts


def build_report(run_dir: Path) -> str:
    """The page's HTML for a run folder (also writes summary.csv and heatmap PNGs into it)."""
    run_dir = Path(run_dir)
    results = run_dir / "results.csv"
    if not results.is_file():
        raise LengenError(f"{run_dir}: no results.csv (is this a lengen run folder with a finished cell?)")
    rows = read_results(results)
    if not rows:
        raise LengenError(f"{results}: no result rows")
    config_text = (run_dir / "experiment.yaml").read_text(encoding="utf-8") \
        if (run_dir / "experiment.yaml").is_file() else "(experiment.yaml missing)"
    try:
        config = yaml.safe_load(config_text)
    except yaml.YAMLError:  # a damaged config must not prevent reading the results
        config = {}
    config = config if isinstance(config, dict) else {}
    env_path = run_dir / ENVIRONMENT_FILE
    run_env = json.loads(env_path.read_text(encoding="utf-8")) if env_path.is_file() else None

    learned, excluded = excluded_models(rows)  # findings use only models that learned in distribution
    none_learned = not learned
    rows = learned or rows  # with none learned, the page still shows what they did, under a warning
    write_csv(run_dir / "summary.csv", summary_rows(rows))
    seeds = len({r["seed"] for r in rows})
    figures = [_img(render_accuracy_vs_length(rows), "accuracy vs evaluation length",
                    "Accuracy against evaluation length (mean over seeds"
                    + (f"; shaded: {INTERVAL})." if seeds > 1 else ").") + " Dashed: longest training length.")]
    if any(r.get("exact_match") is not None for r in rows) and any(r["exact_match"] != r["accuracy"] for r in rows):
        figures.append(_img(render_accuracy_vs_length(rows, "exact_match"), "exact match vs evaluation length",
                            "Exact match (every answer token right) against evaluation length."))
    for col, name in (("k", "heatmap_k.png"), ("scheme", "heatmap_scheme.png")):
        png = render_heatmap(rows, col)
        if png is not None:
            atomic_write_bytes(run_dir / name, png)
            figures.append(_img(png, f"heatmap of accuracy by {col} and evaluation length",
                                f"Mean accuracy over seeds by {col} (rows) and evaluation length (columns)."))

    title = str(config.get("experiment") or rows[0]["experiment"])
    question = str(config.get("description") or "").strip() or \
        f"How does accuracy on {rows[0]['task']} change beyond the training length?"
    cells = len({tuple(sorted((k, str(v)) for k, v in r.items() if k not in _PER_LENGTH)) for r in rows})
    env_rows = []
    for label, env in (("run", run_env), ("report", environment())):
        if env is None:
            continue
        versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
        env_rows.append([label, env["time"], env["device"], env["cpu_count"], env["python"], versions,
                         env.get("backend", ""), env.get("cell_threads", "")])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>lengen report: {html.escape(title)}</title>", _STYLE, "</head><body>",
        f"<h1>lengen report: {html.escape(title)}</h1>",
        f"<h2>Question</h2><p>{html.escape(question)}</p>",
        f'<p class="note">{cells} trained model(s), {seeds} seed(s), {len(rows)} result rows. '
        f"Intervals: {html.escape(INTERVAL)}.</p>",
        "<h2>Conclusions</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in conclusions(rows)) + "</ul>",
        f'<p class="note">Computed from results.csv with the threshold {THRESHOLD:.2f}; chance level depends on '
        f"the task (0.50 for a binary answer).</p>",
        *(["<p><b>No model learned its task in distribution: nothing below is a finding about length "
           "generalization.</b></p>"] if none_learned else []),
        *_protocol_section(run_dir, rows, excluded),
        "<h2>Figures</h2>", *figures,
        *_language_section(run_dir),
        "<h2>Accuracy by evaluation length</h2>", _summary_table(rows),
        "<h2>Training</h2>", _training_table(rows),
        "<h2>Configuration</h2>", f"<pre>{html.escape(config_text)}</pre>",
        "<h2>Environment</h2>",
        _table(["", "time (UTC)", "device", "CPUs", "python", "versions", "backend", "threads per cell"], env_rows,
               left=8),
        _CHECK_FIGURES, "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(run_dir: Path) -> Path:
    """Write ``RUN_DIR/report.html`` (atomically) and return its path."""
    page = build_report(Path(run_dir))
    path = Path(run_dir) / REPORT_FILE
    atomic_write_text(path, page)
    return path
