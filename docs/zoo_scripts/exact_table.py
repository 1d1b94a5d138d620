"""Per task and side of a comparison: models that learned, steps taken, L* per seed and the mean exact
match at chosen multiples of the training length, from a zoo run's results.csv (docs/zoo.md's tables).

    python docs/zoo_scripts/exact_table.py RUN_DIR [--sides coupled,ppc:rope] [--multiples 2 4]
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path


def table(run: Path, sides: list[list[str]], multiples: list[int]) -> str:
    side_of = {label: i for i, labels in enumerate(sides) for label in labels}
    exact: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    models: dict[tuple[str, int], dict[int, dict[str, str]]] = defaultdict(dict)
    train_len: dict[str, int] = {}
    with open(run / "results.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["scheme"] not in side_of:
                continue
            key = (r["task"], side_of[r["scheme"]])
            models[key][int(r["seed"])] = r
            train_len[r["task"]] = int(r["train_max_len"])
            exact[(*key, int(r["eval_len"]))].append(float(r["exact_match"]))
    head = "| task | " + " | ".join(f"{'/'.join(s)}: learned, steps, L* per seed | exact at "
                                     + " / ".join(f"{m}x" for m in multiples) for s in sides) + " |"
    lines = [head, "|---|" + "---|---|" * len(sides)]
    for task in sorted(train_len):
        cells = []
        for i in range(len(sides)):
            per_seed = [models[(task, i)][s] for s in sorted(models[(task, i)])]
            if not per_seed:
                cells += ["-", "-"]
                continue
            steps = sorted(int(r["train_steps"]) for r in per_seed)
            learned = sum(r["learned"] == "True" for r in per_seed)
            l_star = ", ".join(str(int(float(r["l_star"]))) for r in per_seed)
            cells.append(f"{learned}/{len(per_seed)}, {steps[0]}-{steps[-1]}, {l_star}")
            cells.append(" / ".join(f"{statistics.mean(v):.2f}" if (v := exact.get((task, i, m * train_len[task])))
                                    else "-" for m in multiples))
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run", type=Path)
    p.add_argument("--sides", default="coupled,ppc:rope", help="scheme labels per side, ':' between sides")
    p.add_argument("--multiples", type=int, nargs="+", default=[2, 4])
    args = p.parse_args()
    if not (args.run / "results.csv").is_file():
        p.error(f"{args.run}: no results.csv (a folder written by lengen run experiments/zoo_coupled.yaml)")
    print(table(args.run, [s.split(",") for s in args.sides.split(":")], args.multiples))


if __name__ == "__main__":
    main()
