"""Planted text with k up to 3 (or more): does the sufficiency measure recover the planted k, and what does
restoring exactly the planted codes into a truncated context give? (docs/language.md, "Planted k = 3")

Trains a RoPE reference on planted text (``lengen.text.planted_text``: each event's answer encodes k code
characters that lie more than ``near`` tokens back), measures every held-out answer's distant sparsity
with ``lengen.text.sufficiency`` (the pipeline of experiments/language.yaml), and reports per planted k:
how often the measured k is exact, the histogram of measured k, and three shares of the reference's
distant gain for the events of each k:

- ``holes, all codes``: the k codes restored into the near block, every other distant token removed (what
  the measure does; the ideal reference gives 1);
- ``holes, k - 1 codes``: the first k - 1 codes restored so (ideal (k - 1) / k);
- ``filler, k - 1 codes``: the whole window with the last code turned into filler (ideal (k - 1) / k);
- and how many answers have some k - 1 of their codes, restored into holes, reach the share (these the
  measure reads as k - 1 or less).

``--share 0.8 0.9`` measures with each share (one table each); ``--holes H`` trains the reference with
holes (``lengen.holes``).

    python docs/language_scripts/planted_k.py [--ks 1 2 3] [--steps 2000] [--layers 2] [--documents 400] [--holes 40]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from lengen.check.lm import lengen_lm, target_logprob
from lengen.config_parse import parse_experiment
from lengen.diagnose.sources import lengen_handle
from lengen.errors import LengenError
from lengen.text.distant import distant_dependence
from lengen.text.length_eval import near_context_losses, token_losses
from lengen.text.planted_text import PlantedText, keep_codes, reference_experiment
from lengen.text.sufficiency import SufficiencyConfig, measure_sufficiency
from lengen.train import train


def reference(corpus: Path, cache: Path, args: argparse.Namespace) -> torch.nn.Module:
    raw = reference_experiment(corpus, cache, args.steps, args.layers, args.d_model, args.lr, args.holes, args.seed)
    return train(parse_experiment(raw).cells()[0], progress=False).model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--documents", type=int, default=400, help="training documents of 8 events")
    p.add_argument("--held-out", type=int, default=12, help="held-out documents of 8 events")
    p.add_argument("--near", type=int, default=7)
    p.add_argument("--share", type=float, nargs="+", default=[0.8])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holes", type=int, default=0, help="train.holes of the reference (lengen.holes)")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    gen = PlantedText(ks=tuple(args.ks), alphabet=3, length=32, near=args.near)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # codes dropped (turned to filler) in 25% of training events, so the reference learns what a
        # missing code leaves open (see PlantedText.drop)
        dataclasses.replace(gen, drop=0.25).write_corpus(Path(tmp) / "corpus", args.documents, seed=args.seed)
        model = reference(Path(tmp) / "corpus", Path(tmp) / "cache", args)
    trained = time.perf_counter() - start
    docs, events = gen.documents(args.held_out, seed=args.seed + 1)
    windows = gen.windows(docs)
    rows, answer = np.arange(len(events)), np.array([e.answer for e in events])
    planted = np.array([e.k for e in events])
    gain_all = near_context_losses(model, windows, args.near).numpy() - token_losses(model, windows).numpy()
    gain = gain_all[rows, answer - 1]
    keep = gain >= 0.5
    dep = distant_dependence(lengen_handle(model), windows, args.near)
    assert dep.top is not None
    lm = lengen_lm(model)
    measured = {}
    for share in args.share:
        suff = measure_sufficiency(lm, windows, rows[keep], answer[keep], args.near,
                                   dep.top[rows[keep], answer[keep] - 1], SufficiencyConfig(share=share))
        measured[share] = np.full(len(events), -1)
        measured[share][keep] = suff.k

    def logprob(i: int, context: torch.Tensor, positions: list[int]) -> float:
        pos = torch.tensor(sorted(positions))[None]
        return float(target_logprob(lm, context[pos], pos, windows[i, answer[i]][None])[0])

    # per answer: shares of its gain from all codes and from the first k - 1 codes restored into holes, from
    # the whole window with the last code as filler, and the best of every (k - 1)-subset of codes in holes
    shares: dict[int, np.ndarray] = {}
    for k in sorted(set(args.ks)):
        per = []
        for i in np.nonzero((planted == k) & keep)[0]:
            e, a = events[i], int(answer[i])
            block = list(range(a - args.near, a))
            whole, near_only = logprob(i, windows[i], list(range(a))), logprob(i, windows[i], block)
            g = whole - near_only
            all_codes = logprob(i, windows[i], list(e.codes) + block)
            subsets = [logprob(i, windows[i], list(c) + block) for c in combinations(e.codes, k - 1)] if k > 1 \
                else [near_only]
            filler = logprob(i, keep_codes(windows[i:i + 1], [e], k - 1)[0], list(range(a)))
            per.append([(all_codes - near_only) / g, (subsets[0] - near_only) / g, (filler - near_only) / g,
                        (max(subsets) - near_only) / g])
        shares[k] = np.array(per).reshape(-1, 4)
    print(f"reference: {args.layers} layers, d_model {args.d_model}, {args.steps} steps on {args.documents} documents, "
          f"holes {args.holes} ({trained:.0f} s); {len(events)} held-out answers, {int(keep.sum())} gain >= 0.5 nats")
    for share in args.share:
        print(f"\nshare {share}:\n")
        print("| planted k | answers | mean gain (ideal) | measured k exact | measured k histogram | share of the gain "
              "(ideal): holes, all codes | holes, k - 1 codes | filler, k - 1 codes | answers where some k - 1 codes "
              "reach the share |")
        print("|---|---|---|---|---|---|---|---|---|")
        for k, sh in shares.items():
            idx = np.nonzero((planted == k) & keep)[0]
            if not len(idx):
                print(f"| {k} | 0 | {gain[planted == k].mean():.2f} ({k * np.log(3):.2f}) | - | - | - | - | - | - |")
                continue
            got = measured[share][idx]
            print(f"| {k} | {len(idx)} | {gain[planted == k].mean():.2f} ({k * np.log(3):.2f}) | {(got == k).mean():.0%} | "
                  f"{np.bincount(got, minlength=k + 2).tolist()} | "
                  + " | ".join(f"{v:.2f} ({ideal:.2f})" for v, ideal in zip(sh[:, :3].mean(0), (1, (k - 1) / k, (k - 1) / k),
                                                                              strict=True))
                  + f" | {(sh[:, 3] >= share).mean():.0%} |")

if __name__ == "__main__":
    try:
        main()
    except LengenError as e:
        sys.exit(f"planted_k: {e}")
