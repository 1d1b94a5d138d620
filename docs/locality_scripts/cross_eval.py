"""Cross-evaluation for experiments/locality_window.yaml: score every trained model on the test inputs of
every window setting, so that "trained local" and "tested local" can be told apart.

    python docs/locality_scripts/cross_eval.py RUN_DIR [--lengths 320] [--samples 256]

Prints, per scheme, a table train window x test window of the mean accuracy (95% t-interval over seeds)
of the models that learned in distribution. The diagonal repeats results.csv (same evaluation seed);
off the diagonal a model meets planted bits closer together or farther apart than it was trained on.
Then, per scheme, the within-model difference: each model's accuracy on inputs with the narrowest
window minus its accuracy on inputs with the bits anywhere, mean [95% t] over every model of the scheme.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import torch

from lengen.checkpoint import load_model
from lengen.evaluate import evaluate_length
from lengen.report.aggregate import summarize
from lengen.tasks import make_task


def label(window: int | None) -> str:
    return "anywhere" if window is None else str(window)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run", type=Path)
    p.add_argument("--lengths", type=int, nargs="+", default=[320])
    p.add_argument("--samples", type=int, default=256)
    args = p.parse_args()
    if not (args.run / "results.csv").is_file():
        p.error(f"{args.run}: no results.csv (a folder written by lengen run experiments/locality_window.yaml)")
    torch.set_num_threads(2)
    learned = {}
    with open(args.run / "results.csv") as f:
        for r in csv.DictReader(f):
            learned[r["scheme"], r["window"] or "anywhere", r["seed"]] = r["learned"] == "True"
    # the window settings of the run, from results.csv (narrowest first, "anywhere" last)
    windows = sorted({None if w == "anywhere" else int(w) for _, w, _ in learned}, key=lambda w: (w is None, w or 0))
    # (scheme, trained window, cell, length) -> {tested window: accuracy}, for the models that learned
    scores: dict[tuple[str, str, str, int], dict[str, float]] = defaultdict(dict)
    for c in sorted((args.run / "cells").iterdir()):
        loaded = load_model(c)
        cell = loaded.cell
        trained = label(cell.task_args.get("window"))
        if not learned.get((cell.scheme.label, trained, str(cell.seed)), False):
            continue
        for w in windows:
            task = make_task(cell.task, **{**cell.task_args, "k_min": None, "window": w})
            for n in args.lengths:
                row = evaluate_length(loaded.model, task, n, args.samples, cell.eval.seed)
                scores[cell.scheme.label, trained, c.name, n][label(w)] = row["accuracy"]
    for n in args.lengths:
        print(f"\naccuracy at length {n}: rows = trained window, columns = tested window")
        for scheme in sorted({k[0] for k in scores}):
            print(f"\n{scheme}\n| trained \\ tested | " + " | ".join(label(w) for w in windows) + " |")
            print("|---|" + "---|" * len(windows))
            for t in windows:
                cols = []
                for w in windows:
                    v = [tested[label(w)] for (s_, t_, _, m), tested in scores.items()
                         if (s_, t_, m) == (scheme, label(t), n)]
                    s = summarize(v) if v else None
                    cols.append("-" if s is None else f"{s.mean:.3f}" + (f" [{s.low:.2f}, {s.high:.2f}]" if s.n > 1 else "")
                                + f" ({s.n})")
                print(f"| {label(t)} | " + " | ".join(cols) + " |")
        narrow, wide = label(windows[0]), label(windows[-1])
        print(f"\nsame model, tested on window {narrow} minus tested {wide}, at length {n} (every model of the scheme)")
        print("| scheme | difference, mean [95% t] | models |\n|---|---|---|")
        for scheme in sorted({k[0] for k in scores}):
            diffs = [v[narrow] - v[wide] for (s_, _, _, m), v in scores.items() if s_ == scheme and m == n]
            d = summarize(diffs, -math.inf, math.inf)
            print(f"| {scheme} | {d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}] | {d.n} |")


if __name__ == "__main__":
    main()
