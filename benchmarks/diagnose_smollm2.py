"""Summaries of a `lengen diagnose` text run (docs/diagnose.md, SmolLM2-135M on the KJV).

Reads OUT/partial.json written by the run and prints: the effective-k distribution, the histogram of
dependency distances, the share of scored tokens with a dependency N or more tokens back, the
throughput, and how k moves when the effect threshold (--min-effect) is raised, recomputed from the
single-position effects stored in the records (no model run needed).

    python benchmarks/diagnose_smollm2.py /tmp/smol_512
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def k_of(effects: list[list[float]], min_effect: float, share: float) -> tuple[int, list[int]]:
    """Effective k and dependency distances from stored [distance, nats] pairs (largest first)."""
    kept = sorted((e for e in effects if e[1] >= min_effect), key=lambda e: -e[1])
    total = sum(e[1] for e in kept)
    if total <= 0:
        return 0, []
    acc, k = 0.0, 0
    for _, v in kept:
        acc += v
        k += 1
        if acc >= share * total - 1e-9:
            break
    return k, [int(d) for d, _ in kept[:k]]


def main() -> None:
    out = Path(sys.argv[1])
    state = json.loads((out / "partial.json").read_text())
    recs = state["records"]
    share = float(state["ablation"]["share"])
    n = len(recs)
    print(f"scored tokens {n}, window {state['window']}, scored per window {state.get('scored_per_row', 1)}, "
          f"finished {state['finished']}")
    print(f"wall {state['wall_s']:.0f} s (model load and baseline pilot excluded): {n / state['wall_s']:.2f} "
          f"scored tokens/s; {state['forward_rows'] / n:.3f} forward passes of a {state['window']}-token "
          "window per scored token")
    ks = np.array([r["k"] for r in recs])
    print(f"effective k (as run): median {np.median(ks):g}, p90 {np.quantile(ks, 0.9):g}, max {ks.max()}, "
          f"k=0 share {(ks == 0).mean():.3f}")
    values, counts = np.unique(np.minimum(ks, 64), return_counts=True)
    print("k histogram (as run, 64 = 64 or more):", {int(v): int(c) for v, c in zip(values, counts, strict=True)})
    dists = np.array([d for r in recs for d in r["distances"]])
    edges = [0, 1, 2, 4, 8, 16, 32, 64, 128]
    hist, _ = np.histogram(dists, bins=edges)
    print("dependency distances:", {f"{a}-{b - 1}": int(c) for a, b, c in zip(edges[:-1], edges[1:], hist, strict=True)})
    far = [max(r["distances"]) if r["distances"] else -1 for r in recs]
    print("share needing a token >= N back:", {m: round(float(np.mean([f >= m for f in far])), 3)
                                                for m in (4, 8, 16, 32, 64)})
    print("min_effect sensitivity (recomputed from stored effects):")
    for me in (0.05, 0.1, 0.25, 0.5, 1.0):
        res = [k_of(r["effects"], me, share) for r in recs]
        kk = np.array([k for k, _ in res])
        farm = [max(d) if d else -1 for _, d in res]
        print(f"  min_effect {me:>4} nats: k median {np.median(kk):g}, p90 {np.quantile(kk, 0.9):g}, "
              f"k<=4 {np.mean(kk <= 4):.3f}, k=0 {np.mean(kk == 0):.3f}; share with a dependency >= 16 back "
              f"{np.mean([f >= 16 for f in farm]):.3f}, >= 64 back {np.mean([f >= 64 for f in farm]):.3f}")


if __name__ == "__main__":
    main()
