"""Gain recovered by two schemes of one language run, and their difference with a paired bootstrap over
windows (both read the same windows and tokens): docs/language.md, "More training".

The share is the run's raw gain-recovered share (``lengen.text.recovery``): a scheme's distant gain (loss
reading the last ``near`` tokens minus loss reading the whole window), averaged over its seeds, summed over
the tokens the sufficiency measure kept, over the reference's sum. Also prints each seed's mean loss.

    python docs/language_scripts/paired_share.py RUN_DIR rope_pose rope_pose_long [--draws 2000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def gains(run: Path, label: str, window: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, list[Path]]:
    files = sorted(run.glob(f"cells/{label}_seed*/language_losses.npz"))
    if not files:
        sys.exit(f"paired_share: no scored cells of scheme {label} in {run} (run the experiment first)")
    per_seed = []
    for f in files:
        d = np.load(f)
        per_seed.append((d["near"] - d["long"])[window, position - 1])
    return np.mean(per_seed, 0), files


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--reference", default="reference_rope512")
    p.add_argument("--draws", type=int, default=2000)
    args = p.parse_args(argv)
    path = args.run / "language" / "sufficiency.npz"
    if not path.is_file():
        sys.exit(f"paired_share: {path} not found (the folder of a finished language run)")
    suff = np.load(path)
    window, position = suff["window"], suff["position"]
    g_ref, _ = gains(args.run, args.reference, window, position)
    a, files_a = gains(args.run, args.a, window, position)
    b, files_b = gains(args.run, args.b, window, position)
    share_a, share_b = a.sum() / g_ref.sum(), b.sum() / g_ref.sum()
    rng = np.random.default_rng(0)
    windows = np.unique(window)
    rows_of = {w: np.nonzero(window == w)[0] for w in windows}
    diffs = []
    for _ in range(args.draws):
        sel = np.concatenate([rows_of[w] for w in rng.choice(windows, len(windows))])
        diffs.append((b[sel].sum() - a[sel].sum()) / g_ref[sel].sum())
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    print(f"{len(window)} tokens, {len(windows)} windows; seeds {len(files_a)} / {len(files_b)}")
    print(f"share of the reference's distant gain: {args.a} {share_a:+.3f}, {args.b} {share_b:+.3f}; "
          f"{args.b} minus {args.a} {share_b - share_a:+.3f} [{lo:+.3f}, {hi:+.3f}] (95%, paired bootstrap over windows)")
    for label, files in ((args.a, files_a), (args.b, files_b)):
        near = [float(np.load(f)["near"].mean()) for f in files]
        long = [float(np.load(f)["long"].mean()) for f in files]
        print(f"{label}: mean loss per seed, last near tokens {' / '.join(f'{v:.3f}' for v in near)}, "
              f"whole window {' / '.join(f'{v:.3f}' for v in long)}")


if __name__ == "__main__":
    main()
