"""Tables for experiments/locality_window.yaml: L* and long-length accuracy per (scheme, window), and the
paired difference (same scheme and seed) between each window and "anywhere".

    python docs/locality_scripts/window_table.py RUN_DIR [--plot OUT.png]

Means over the models that learned in distribution (results.csv's ``learned``), 95% t-intervals over
seeds. Paired differences use the seeds where both models learned.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

from lengen.report.aggregate import summarize

LENGTHS = (40, 80, 160, 320)


def interval(values: list[float], digits: int = 3, lower: float = -math.inf) -> str:
    """Mean [95% t-interval over seeds], the interval clipped below at ``lower``."""
    if not values:
        return "-"
    s = summarize(values, lower=lower, upper=math.inf)
    return f"{s.mean:.{digits}f}" if s.n == 1 else f"{s.mean:.{digits}f} [{s.low:.{digits}f}, {s.high:.{digits}f}]"


def plot(models: dict[tuple[str, str, int], dict], schemes: list[str], windows: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(schemes), figsize=(3.2 * len(schemes), 3.2), sharey=True, squeeze=False)
    for ax, scheme in zip(axes[0], schemes, strict=True):
        lengths: list[int] = []
        for w in windows:
            ok = [m for (s, mw, _), m in sorted(models.items()) if s == scheme and mw == w and m["learned"]]
            if not ok:
                continue
            lengths = sorted(ok[0]["acc"])
            stats = [summarize([m["acc"][n] for m in ok]) for n in lengths]
            ax.plot(lengths, [st.mean for st in stats], marker=".", label=f"window {w}" if w != "anywhere" else w)
            ax.fill_between(lengths, [st.low for st in stats], [st.high for st in stats], alpha=0.15)
        ax.set_title(scheme)
        ax.set_xscale("log", base=2)
        ticks = [n for n in (20, 40, 80, 160, 320) if lengths and n <= max(lengths)]
        ax.set_xticks(ticks, [str(n) for n in ticks])
        ax.minorticks_off()
        ax.set_xlabel("evaluation length")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (k = 3)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(run: Path, plot_to: Path | None = None) -> None:
    models: dict[tuple[str, str, int], dict] = defaultdict(lambda: {"acc": {}})
    with open(run / "results.csv") as f:
        for r in csv.DictReader(f):
            m = models[(r["scheme"], r["window"] or "anywhere", int(r["seed"]))]
            m["acc"][int(r["eval_len"])] = float(r["accuracy"])
            m["l_star"], m["learned"] = float(r["l_star"]), r["learned"] == "True"
            m["in_dist"] = float(r["in_dist_accuracy"])
    schemes = sorted({k[0] for k in models})
    windows = sorted({k[1] for k in models}, key=lambda w: (w == "anywhere", int(w) if w.isdigit() else 0))
    seeds = sorted({k[2] for k in models})
    print("| scheme | window | learned | L* mean [95% t] | L* per seed | " + " / ".join(map(str, LENGTHS)) + " |")
    print("|---|---|---|---|---|---|")
    for s in schemes:
        for w in windows:
            ms = [models[(s, w, seed)] for seed in seeds if (s, w, seed) in models]
            ok = [m for m in ms if m["learned"]]
            per_seed = ", ".join(f"{m['l_star']:.0f}" if m["learned"] else f"({m['in_dist']:.2f})" for m in ms)
            accs = " / ".join(f"{sum(m['acc'][n] for m in ok) / len(ok):.3f}" if ok else "-" for n in LENGTHS)
            print(f"| {s} | {w} | {len(ok)} of {len(ms)} | {interval([m['l_star'] for m in ok], 0, lower=0)} | {per_seed} | {accs} |")
    print()
    print("Paired by seed, window minus anywhere: L* and accuracy at 160 and 320 (mean [95% t], seeds)")
    print("| scheme | window | L* difference | acc. 160 difference | acc. 320 difference | seeds |")
    print("|---|---|---|---|---|---|")
    for s in schemes:
        for w in windows:
            if w == "anywhere":
                continue
            pairs = [(models[(s, w, seed)], models[(s, "anywhere", seed)]) for seed in seeds
                     if (s, w, seed) in models and (s, "anywhere", seed) in models]
            pairs = [(a, b) for a, b in pairs if a["learned"] and b["learned"]]
            dl = [a["l_star"] - b["l_star"] for a, b in pairs]
            d160 = [a["acc"][160] - b["acc"][160] for a, b in pairs]
            d320 = [a["acc"][320] - b["acc"][320] for a, b in pairs]
            print(f"| {s} | {w} | {interval(dl, 0)} | {interval(d160)} | {interval(d320)} | {len(pairs)} |")
    if plot_to is not None:
        plot(models, schemes, windows, plot_to)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--plot"):
        sys.exit("usage: window_table.py RUN_DIR [--plot OUT.png]")
    if not (Path(args[0]) / "results.csv").is_file():
        sys.exit(f"window_table.py: {args[0]}: no results.csv (a folder written by lengen run "
                 "experiments/locality_window.yaml)")
    main(Path(args[0]), Path(args[2]) if len(args) == 3 else None)
