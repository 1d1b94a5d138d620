"""The position confound of the earlier flat-bucket reading (issue 14): the loss increase per bucket
within each position range of a ``language_results.csv``, and with the ranges weighted equally.

    python -m lengen.text.position_confound docs/figures/language/language_results.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lengen.errors import LengenError
from lengen.report.results import read_csv


def confound_tables(path: str) -> str:
    rows = read_csv(Path(path))
    buckets = ["none", "few (1-3)", "many (>3)"]
    ranges = sorted({r["range"] for r in rows if r["range"] not in ("beyond", "[1,64)") and r["bucket"] in buckets},
                    key=lambda s: int(s.strip("[)").split(",")[0]))
    if not ranges:
        raise LengenError(f"{path}: no bucketed position ranges (expected the language analysis's tidy rows)")
    first = rows[0]["scheme"]
    counts = {b: [int(next(r["tokens"] for r in rows if r["scheme"] == first and r["bucket"] == b and r["range"] == rg))
                  for rg in ranges] for b in buckets}
    lines = ["Tokens of each bucket per position range: " + "; ".join(
        f"{b}: " + ", ".join(f"{rg} {n} ({n / sum(counts[b]):.0%})" for rg, n in zip(ranges, counts[b], strict=True))
        for b in buckets), "",
             "| scheme | range | " + " | ".join(buckets) + " |", "|---|---|---|---|---|"]
    equal = {}
    for scheme in dict.fromkeys(r["scheme"] for r in rows):
        by = {(r["bucket"], r["range"]): float(r["loss_increase"]) for r in rows if r["scheme"] == scheme}
        for rg in ranges:
            lines.append(f"| {scheme} | {rg} | " + " | ".join(f"{by[(b, rg)]:+.3f}" for b in buckets) + " |")
        equal[scheme] = [sum(by[(b, rg)] for rg in ranges) / len(ranges) for b in buckets]
    lines += ["", "| scheme (ranges weighted equally) | " + " | ".join(buckets) + " |", "|---|---|---|---|"]
    lines += [f"| {s} | " + " | ".join(f"{x:+.3f}" for x in v) + " |" for s, v in equal.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loss increase per bucket within position ranges.")
    parser.add_argument("csv")
    args = parser.parse_args(argv)
    print(confound_tables(args.csv))


if __name__ == "__main__":
    main()
