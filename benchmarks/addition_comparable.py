"""Addition models of a finished run, scored on the peers' test sets (issue 15, point 4).

Every cell of a run of ``experiments/addition.yaml`` is loaded and scored by exact match of the whole
answer on fresh test sets of the ``addition`` task:
- ``exact``: both operands have exactly n digits (Cho et al. 2024's test set);
- ``all_carry``: both n digits and a carry into every column, so the carry chain spans the answer;
- ``mixed``: the training distribution (the shorter operand has 1..n digits).

    python benchmarks/addition_comparable.py runs/addition --samples 10000 --out runs/addition/comparable.csv
    python benchmarks/addition_comparable.py runs/addition --quick      # 64 samples, two lengths

Exact match is teacher-forced by default (``--mode teacher``, one forward pass per batch): a sample
counts when every answer token, and for PPC every predicted next id, is right given the true prefix.
That is exactly the samples greedy decoding gets right (decoding emits the true prefix as long as every
prediction is right, and diverges at the first wrong one), at a fraction of the cost;
``--mode generate`` decodes instead. Rows (one per cell, test set and length) go to ``--out`` as CSV;
a table of exact match, mean over seeds with the per-seed minimum, is printed.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lengen.checkpoint import load_model
from lengen.errors import LengenError
from lengen.evaluate import eval_batch_size, generation_inputs
from lengen.generate import generate
from lengen.io import atomic_write_text
from lengen.monitor import teacher_exact
from lengen.position_ids import prepare_position_ids
from lengen.tasks import make_task


@torch.no_grad()
def exact_match(model: Any, task: Any, length: int, samples: int, seed: int, ids_kind: str, batch: int,
                device: torch.device, teacher: bool) -> float:
    """Fraction of ``samples`` fresh sums of ``length`` digits answered exactly (whole answer and EOS)."""
    rng = np.random.default_rng([seed, length, 15])
    ppc = model.id_head() is not None and ids_kind == "coupled"
    exact = done = 0
    if teacher:
        batch = min(batch, eval_batch_size(3 * length + 4, model.cfg.n_heads, samples))
    while done < samples:
        n = min(batch, samples - done)
        b = task.sample(rng, n, length)
        ids = prepare_position_ids(model, b, ids_kind).to(device)  # eval mode: no random offset
        b = b.to(device)
        if teacher:
            b.position_ids = ids
            with torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else \
                    torch.autocast("cpu", enabled=False):
                exact += int(teacher_exact(model, b).sum())
            done += n
            continue
        prompt, prompt_ids, steps = generation_inputs(b, ids)
        with torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                      enabled=False):
            out = generate(model, prompt, prompt_ids, steps, output_ids=None if ppc else ids[:, -steps:],
                           predict_ids=ppc)
        exact += int((out.tokens == b.answers()).all(dim=1).sum())
        done += n
    return exact / done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a run folder of experiments/addition.yaml")
    ap.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 50, 100, 200])
    ap.add_argument("--sets", nargs="+", default=["exact", "all_carry"], choices=["mixed", "exact", "all_carry"])
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=0, help="samples per generation batch (0: 512 on CUDA, 64 on CPU)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--mode", choices=["teacher", "generate"], default="teacher",
                    help="teacher-forced exact match (the same samples as greedy decoding, much cheaper) or decoding")
    ap.add_argument("--cells", nargs="*", default=None, help="only these scheme labels")
    ap.add_argument("--quick", action="store_true", help="64 samples at 10 and 50 digits")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.lengths = 64, [10, 50]
    cells = sorted(p for p in (args.run / "cells").glob("*") if p.is_dir())
    if not cells:
        raise SystemExit(f"addition_comparable: error: no cells in {args.run / 'cells'}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = args.batch or (512 if device.type == "cuda" else 64)
    rows: list[dict[str, Any]] = []
    for cell_dir in cells:
        if not (cell_dir / "rows.json").exists():  # a checkpoint of an unfinished run is not the model
            print(f"skipped {cell_dir.name}: training has not finished")
            continue
        try:
            loaded = load_model(cell_dir)
        except LengenError as e:
            print(f"skipped {cell_dir.name}: {e}")
            continue
        cell, model = loaded.cell, loaded.model.to(device)
        if args.cells is not None and cell.scheme.label not in args.cells:
            continue
        for test_set in args.sets:
            task = make_task("addition", **{**cell.task_args, "operands": test_set})
            for n in args.lengths:
                start = time.perf_counter()
                em = exact_match(model, task, n, args.samples, cell.eval.seed, cell.train.ids, batch, device,
                                 args.mode == "teacher")
                rows.append({"scheme": cell.scheme.label, "id_layout": task.id_layout, "seed": cell.seed,
                             "test_set": test_set, "digits": n,
                             "train_max_digits": cell.train.max_len, "samples": args.samples, "mode": args.mode,
                             "exact_match": em,
                             "wall_s": round(time.perf_counter() - start, 1)})
                print(f"{cell.scheme.label} ({task.id_layout} layout) seed {cell.seed} {test_set} n={n}: {em:.4f}",
                      flush=True)
    if args.out is not None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(args.out, buf.getvalue())
    # one row per scheme label *and* id layout: a run may train the same label on several layouts
    table: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        table[(r["scheme"], r["id_layout"], r["test_set"])][r["digits"]].append(r["exact_match"])
    print("| scheme | id layout | test set | " + " | ".join(f"{n} digits" for n in args.lengths) + " |")
    print("|---|---|---|" + "---|" * len(args.lengths))
    for (scheme, layout, test_set), by_n in sorted(table.items()):
        cols = [f"{np.mean(v):.4f} (min {min(v):.4f})" for n in args.lengths for v in [by_n[n]]]
        print(f"| {scheme} | {layout} | {test_set} | " + " | ".join(cols) + " |")


if __name__ == "__main__":
    main()
