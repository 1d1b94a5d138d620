"""The language analysis of a text experiment: loss beyond the training context, per sparsity bucket.

Runs after the cells of an experiment with a ``language:`` section (``lengen run`` calls it):

1. ``windows`` validation windows of ``context`` tokens are drawn once (``length_eval.validation_windows``).
2. The reference cell's model (trained on the whole context) measures every token's *distant k*
   (``lengen.text.distant``); tokens are bucketed: none / few / many distant tokens needed.
3. Every model is scored on the same tokens twice: with the whole window as context, and with only the
   last ``near`` tokens (the most it read in training: its in-distribution loss on the same tokens).
4. Tidy rows per model, bucket and position range: mean loss at the long context, mean loss at the
   near context, the reference's loss, and the token count; figures; a Markdown summary that answers
   "do tokens that depend on few distant tokens keep their loss better than tokens that depend on many?"

Everything is cached beside the run (``language/`` and each cell's folder) under a fingerprint of the
windows and settings, and the dependence measurement is saved every few windows, so running again
resumes instead of restarting.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lengen.config import Cell, ExperimentConfig, LanguageConfig
from lengen.diagnose.ablation import AblationConfig
from lengen.diagnose.sources import lengen_handle
from lengen.errors import LengenError
from lengen.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from lengen.report.results import write_csv
from lengen.text.distant import TOP, DistantDependence, bucket_names, buckets, distant_dependence
from lengen.text.length_eval import default_edges, near_context_losses, token_losses, validation_windows
from lengen.text.plots import Curve, plot_loss_by_bucket, plot_loss_vs_position
from lengen.text.recovery_analysis import run_recovery  # issue 14: gain recovered by sufficiency bucket
from lengen.text.run_cache import (
    FOLDER,
    _digest,
    _finished_dir,
    _load_cell_model,
    _load_npz,
    _npz_bytes,
    _weights_identity,
    reference_cell,
)

RESULTS = "language_results.csv"
CHUNK_WINDOWS = 4  # dependence results are saved after every this many windows
COLUMNS = ["experiment", "scheme", "position", "pose_target_length", "seed", "train_context", "reference", "bucket",
           "range", "start", "end", "tokens", "loss", "near_loss", "loss_increase", "increase_ci", "matched_increase",
           "reference_loss"]


def measure_dependence(cfg: ExperimentConfig, lang: LanguageConfig, out_dir: Path, windows: torch.Tensor,
                       progress: bool = True) -> DistantDependence:
    """The reference model's distant k of every token, resumed from ``language/dependence.npz``."""

    ref = reference_cell(cfg, lang)
    near = lang.near_context(cfg)
    ablation = AblationConfig(replacements=lang.replacements, share=lang.share, min_effect=lang.min_effect)
    handle = lengen_handle(_load_cell_model(out_dir, ref), description=f"reference {ref.scheme.label}")
    fingerprint = _digest(windows.numpy(), ref.key, _weights_identity(out_dir, ref), near, dataclasses.asdict(ablation),
                          "top-v1")  # caches from before the ablation order was kept are measured again
    path = out_dir / FOLDER / "dependence.npz"
    saved = _load_npz(path, fingerprint)
    w, c = windows.shape
    if saved is not None:
        k, effect, top, done = saved["k"], saved["effect"], saved["top"], int(saved["done"])
        baseline = torch.from_numpy(saved["baseline"])
        rows = float(saved["forward_rows"])
    else:
        k, effect, done, rows = np.full((w, c - 1), -1), np.zeros((w, c - 1)), 0, 0.0
        top = np.full((w, c - 1, TOP), -1, dtype=np.int16)
        baseline = None
    if progress and done < w:
        print(f"language: measuring distant dependence with {ref.scheme.label} on {w - done} of {w} windows "
              f"of {c} tokens", flush=True)
    while done < w:
        hi = min(w, done + CHUNK_WINDOWS)
        part = distant_dependence(handle, windows[done:hi], near, ablation, baseline, progress=progress)
        baseline = torch.tensor(part.baseline)
        k[done:hi], effect[done:hi] = part.k, part.effect
        assert part.top is not None
        top[done:hi] = part.top
        rows += part.forward_rows
        done = hi
        atomic_write_bytes(path, _npz_bytes(k=k, effect=effect, top=top, done=np.array(done), baseline=baseline.numpy(),
                                            forward_rows=np.array(rows), fingerprint=np.array(fingerprint)))
    assert baseline is not None
    return DistantDependence(k=k, effect=effect, near=near, baseline=baseline.tolist(), forward_rows=rows,
                             top=top.astype(np.int64))


def model_losses(out_dir: Path, cell: Cell, windows: torch.Tensor, near: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(long-context loss, near-context loss) of every token, [W, C-1] each, cached in the cell's folder
    (the weights are loaded only when the cache misses)."""
    path = _finished_dir(out_dir, cell) / "language_losses.npz"
    fingerprint = _digest(windows.numpy(), _weights_identity(out_dir, cell), near, seed)
    saved = _load_npz(path, fingerprint)
    if saved is not None:
        return saved["long"], saved["near"]
    model = _load_cell_model(out_dir, cell)
    long = token_losses(model, windows, seed).numpy()
    short = near_context_losses(model, windows, near, seed).numpy()
    atomic_write_bytes(path, _npz_bytes(long=long, near=short, fingerprint=np.array(fingerprint)))
    return long, short


STRATA = 5  # reference-loss quantile bins of the difficulty-matched comparison
MIN_STRATUM = 20  # tokens a (bucket, stratum) cell needs to count


def difficulty_strata(reference: np.ndarray, bucket: np.ndarray, n: int = STRATA) -> np.ndarray:
    """Per token, its quantile bin (0..n-1) of the reference model's loss among the bucketed tokens, or -1:
    not bucketed, or in a bin where some bucket has fewer than ``MIN_STRATUM`` tokens (so every bucket is
    averaged over the same bins).

    The buckets differ in difficulty (tokens whose prediction many distant tokens move are the hard ones),
    and how much a loss can rise depends on how low it was; comparing buckets within bins of an
    independent model's loss removes that confound without using the scored model's own losses.
    """
    scored = bucket >= 0
    edges = np.quantile(reference[scored], np.linspace(0, 1, n + 1)[1:-1])
    strata = np.where(scored, np.searchsorted(edges, reference, side="right"), -1)
    present = [int(b) for b in np.unique(bucket[scored])]
    common = [s for s in range(n) if all(((bucket == b) & (strata == s)).sum() >= MIN_STRATUM for b in present)]
    return np.where(np.isin(strata, common), strata, -1)


def matched_mean(values: np.ndarray, sel: np.ndarray, strata: np.ndarray) -> float:
    """Mean of ``values[sel]`` per difficulty stratum, then averaged over the strata with enough tokens."""
    means = [float(values[sel & (strata == s)].mean()) for s in range(int(strata.max()) + 1)
             if (sel & (strata == s)).any()]
    return float(np.mean(means)) if means else float("nan")


def tidy_rows(cell: Cell, long: np.ndarray, short: np.ndarray, reference: np.ndarray, bucket: np.ndarray,
              names: list[str], edges: list[int], near: int, is_reference: bool,
              strata: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows per bucket ("all" plus each distant-k bucket) and position range, plus a "beyond" range
    (every position past the training context). Position p is column p - 1. With ``strata``
    (``difficulty_strata``), "beyond" rows also carry ``matched_increase``: the loss increase averaged
    within reference-loss bins first, so that buckets are compared at equal difficulty."""
    pos = np.arange(1, long.shape[1] + 1)[None, :].repeat(long.shape[0], 0)
    ranges = list(zip(edges[:-1], edges[1:], strict=True)) + [(near + 1, long.shape[1] + 1)]
    base = {"experiment": cell.experiment, "scheme": cell.scheme.label, "position": cell.scheme.position, "seed": cell.seed,
            "pose_target_length": cell.train.pose_target_length, "train_context": cell.train.max_len,
            "reference": is_reference}
    out = []
    for b, name in [(-2, "all")] + list(enumerate(names)):
        in_bucket = np.ones_like(bucket, dtype=bool) if b == -2 else bucket == b
        for i, (lo, hi) in enumerate(ranges):
            sel = in_bucket & (pos >= lo) & (pos < hi)
            n = int(sel.sum())
            if n == 0:
                continue
            diff = long[sel] - short[sel]
            beyond = i == len(ranges) - 1
            matched = matched_mean(long - short, sel, strata) if beyond and strata is not None else float("nan")
            out.append({**base, "bucket": name, "range": "beyond" if beyond else f"[{lo},{hi})",
                        "start": lo, "end": hi, "loss": float(long[sel].mean()), "near_loss": float(short[sel].mean()),
                        "loss_increase": float(diff.mean()),
                        "increase_ci": float(1.96 * diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
                        "matched_increase": matched,
                        "reference_loss": float(reference[sel].mean()), "tokens": n})
    return out


def run_language_analysis(cfg: ExperimentConfig, out_dir: Path, progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) the analysis of a finished text experiment; returns the tidy rows it wrote."""

    lang = cfg.language
    if lang is None:
        raise LengenError(f"experiment {cfg.experiment!r} has no language: section")
    out_dir = Path(out_dir)
    folder = out_dir / FOLDER
    ref = reference_cell(cfg, lang)
    near = lang.near_context(cfg)
    windows = validation_windows(ref.build_eval_task(), lang.context, lang.windows, lang.seed)
    dep = measure_dependence(cfg, lang, out_dir, windows, progress)
    bucket = buckets(dep.k, lang.few)
    names = bucket_names(lang.few)
    cells = cfg.cells()
    losses = {cell.key: model_losses(out_dir, cell, windows, near, lang.seed) for cell in cells}
    ref_long = losses[ref.key][0]
    edges = default_edges(near + 1, lang.context)
    strata = difficulty_strata(ref_long, bucket)
    rows: list[dict[str, Any]] = []
    curves: list[Curve] = []
    several_seeds = len({cell.seed for cell in cells}) > 1  # schemes may run their own seeds
    for cell in cells:
        long, short = losses[cell.key]
        label = f"{cell.scheme.label} seed {cell.seed}" if several_seeds else cell.scheme.label
        curves.append(Curve(label, cell.scheme.position, long.mean(0), cell.key == ref.key))
        rows += tidy_rows(cell, long, short, ref_long, bucket, names, edges, near, cell.key == ref.key, strata)
    write_csv(folder / RESULTS, rows, COLUMNS)
    scored = dep.scored()
    stats = {"windows": int(windows.shape[0]), "context": int(windows.shape[1]), "near": near,
             "reference": ref.scheme.label, "baseline_tokens": dep.baseline,
             "reference_forward_rows": dep.forward_rows,
             "bucket_tokens": {n: int((bucket == i).sum()) for i, n in enumerate(names)},
             "distant_k_histogram": np.bincount(dep.k[scored]).tolist() if scored.any() else []}
    atomic_write_json(folder / "dependence_summary.json", stats)
    plot_loss_vs_position(curves, near, lang.bin, folder / "loss_vs_position.png")
    plot_loss_by_bucket(rows, names, folder / "loss_by_bucket.png")
    recovery = run_recovery(cfg, out_dir, windows, dep, losses, progress)
    atomic_write_text(folder / "summary.md", summary_markdown(rows, names, stats) + "\n" + recovery)
    return rows


def _beyond(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Rows of the "beyond" range by model (scheme, plus the seed when there are several) and bucket."""
    several = len({r["seed"] for r in rows}) > 1
    by: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        if r["range"] == "beyond":
            by[f"{r['scheme']} seed {r['seed']}" if several else r["scheme"]][r["bucket"]] = r
    return by


def summary_markdown(rows: list[dict[str, Any]], names: list[str], stats: dict[str, Any]) -> str:
    """The table of loss increase beyond the training context per bucket, and the answer in words."""
    near = stats["near"]
    total = sum(stats["bucket_tokens"].values()) or 1
    lines = [f"Tokens past the training context (positions {near + 1}-{stats['context'] - 1} of "
             f"{stats['windows']} validation windows), bucketed by the distant tokens (farther back than {near}) "
             f"that the reference model {stats['reference']} needs: "
             + ", ".join(f"{n}: {c} ({c / total:.0%})" for n, c in stats["bucket_tokens"].items()) + ".",
             "",
             "Loss increase = loss reading the whole window minus loss of the same tokens reading only the last "
             f"{near} tokens (the most seen in training); nats per token, 95% interval over tokens.",
             "",
             "| scheme | PoSE | " + " | ".join(f"{n}: increase" for n in names) + " | all: loss (near) | reference loss |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    answers: list[tuple[str, list[float]]] = []
    by_model = _beyond(rows)
    for scheme, by in by_model.items():
        cells = []
        for n in names:
            r = by.get(n)
            cells.append(f"{r['loss_increase']:+.3f} ± {r['increase_ci']:.3f}" if r else "n/a")
        a = by["all"]
        pose = a["pose_target_length"] if a["pose_target_length"] not in (None, "") else "-"
        lines.append(f"| {scheme} | {pose} | " + " | ".join(cells) + f" | {a['loss']:.3f} ({a['near_loss']:.3f}) | "
                     f"{a['reference_loss']:.3f} |")
        if a["reference"]:
            continue
        inc = [by[n]["loss_increase"] for n in names if n in by]
        if len(inc) == len(names):
            answers.append((scheme, inc))
    first = next(iter(by_model.values()))
    lines += ["", "The buckets differ in difficulty: the reference's mean loss is "
              + ", ".join(f"{first[n]['reference_loss']:.2f} ({n})" for n in names if n in first)
              + " nats. Difficulty-matched increase = the loss increase averaged within "
              f"{STRATA} bins of the reference's loss first, then over the bins in which every bucket has >= "
              f"{MIN_STRATUM} tokens:",
              "", "| scheme | " + " | ".join(f"{n}: matched increase" for n in names) + " |",
              "|---|" + "---|" * len(names)]
    matched = []
    for scheme, by in by_model.items():
        vals = [by[n]["matched_increase"] if n in by else float("nan") for n in names]
        lines.append(f"| {scheme} | " + " | ".join(f"{v:+.3f}" if np.isfinite(v) else "n/a" for v in vals) + " |")
        if not by["all"]["reference"]:
            matched.append((scheme, vals))
    lines.append("")
    for what, series in (("raw", answers), ("difficulty-matched", matched)):
        if not series:
            continue
        ordered = [s_ for s_, v in series if v[0] < v[1] < v[2]]
        reverse = [s_ for s_, v in series if v[0] > v[2]]
        lines.append(f"{what.capitalize()}: the increase grows none < few < many (the paper's prediction) for "
                     f"{len(ordered)} of {len(series)} models ({', '.join(ordered) or 'none'}); it is larger for "
                     f"none than for many for {len(reverse)} ({', '.join(reverse) or 'none'}).")
    return "\n".join(lines)
