"""The issue-14 part of the language analysis: which tokens need distant context, how sparsely, and how
much of it each short-trained model recovers (``lengen.text.sufficiency``, ``lengen.text.recovery``).

Called by ``lengen.text.analysis.run_language_analysis`` after the per-token losses of every model are
known. Writes to ``language/``: ``sufficiency.npz`` (cached, keyed by the reference's weights),
``recovery_results.csv`` (tidy: model, measure, bucket, raw and stratified gain recovered with 95%
window-bootstrap intervals), ``recovery_by_bucket.png``, and returns the Markdown section of ``summary.md``.

    python -m lengen.text.recovery_analysis RUN_DIR [--gain-threshold 0.5] [--share 0.8]
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lengen.check.lm import lengen_lm
from lengen.config import Cell, ExperimentConfig, LanguageConfig
from lengen.io import atomic_write_bytes, atomic_write_json
from lengen.report.results import write_csv
from lengen.text.distant import DistantDependence, bucket_names, buckets
from lengen.text.plots import render_grouped_bars
from lengen.text.recovery import Tokens, difference_name, is_difference, recovery_rows, sparsity_buckets
from lengen.text.run_cache import (
    FOLDER,
    _digest,
    _load_cell_model,
    _load_npz,
    _npz_bytes,
    _weights_identity,
    reference_cell,
)
from lengen.text.sufficiency import Sufficiency, SufficiencyConfig, measure_sufficiency

RESULTS = "recovery_results.csv"
COLUMNS = ["model", "measure", "bucket", "tokens", "windows", "seeds", "raw", "raw_lo", "raw_hi", "stratified",
           "stratified_lo", "stratified_hi"]


def _train_frequency(cell: Cell, vocab: int) -> np.ndarray:
    """Count of every token id in the training split (the frequency covariate)."""
    task = cell.build_task()
    tokens = task.load().split("train").tokens  # type: ignore[attr-defined]
    return np.bincount(tokens.astype(np.int64), minlength=vocab)


def measured_tokens(ref_gain: np.ndarray, near: int, threshold: float, cap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(window, position) of the tokens beyond ``near`` on which the reference gains >= ``threshold``; at most
    ``cap`` of them, a seeded draw (sorted)."""
    w, col = np.nonzero(ref_gain >= threshold)
    keep = col + 1 > near
    w, col = w[keep], col[keep]
    if len(w) > cap:
        pick = np.sort(np.random.default_rng(seed).choice(len(w), cap, replace=False))
        w, col = w[pick], col[pick]
    return w, col + 1


def measure(cfg: ExperimentConfig, lang: LanguageConfig, out_dir: Path, windows: torch.Tensor, ref: Cell,
            ref_gain: np.ndarray, dep: DistantDependence, progress: bool) -> Sufficiency:
    near = lang.near_context(cfg)
    suff_cfg = SufficiencyConfig(lang.gain_threshold, lang.recover_share)
    window, position = measured_tokens(ref_gain, near, lang.gain_threshold, lang.max_measured, lang.seed)
    fingerprint = _digest(windows.numpy(), ref.key, _weights_identity(out_dir, ref), near,
                          dataclasses.asdict(suff_cfg), window, position, "sufficiency-v1")
    path = out_dir / FOLDER / "sufficiency.npz"
    saved = _load_npz(path, fingerprint)
    if saved is not None:
        return Sufficiency.from_arrays(saved)
    if progress:
        print(f"language: sufficiency of {len(window)} tokens the reference gains >= {lang.gain_threshold} nats on "
              "from distant context", flush=True)
    top = dep.top[window, position - 1] if dep.top is not None else None
    suff = measure_sufficiency(lengen_lm(_load_cell_model(out_dir, ref)), windows, window, position, near, top,
                               suff_cfg)
    atomic_write_bytes(path, _npz_bytes(**suff.to_arrays(), fingerprint=np.array(fingerprint)))
    return suff


def run_recovery(cfg: ExperimentConfig, out_dir: Path, windows: torch.Tensor, dep: DistantDependence,
                 losses: dict[str, tuple[np.ndarray, np.ndarray]], progress: bool = True) -> str:
    """Measure, tabulate and plot; returns the Markdown section."""
    lang = cfg.language
    assert lang is not None
    out_dir = Path(out_dir)
    ref = reference_cell(cfg, lang)
    near = lang.near_context(cfg)
    ref_long, ref_short = losses[ref.key]
    ref_gain = ref_short - ref_long
    suff = measure(cfg, lang, out_dir, windows, ref, ref_gain, dep, progress)
    w, p = suff.window, suff.position
    freq = _train_frequency(ref, int(windows.max()) + 1)[windows[w, p].numpy()]
    models: dict[str, list[np.ndarray]] = defaultdict(list)
    for cell in cfg.cells():
        if cell.scheme.label == lang.reference:
            continue
        long, short = losses[cell.key]
        models[cell.scheme.label].append((short - long)[w, p - 1])
    rows: list[dict[str, Any]] = []
    bucket, names = sparsity_buckets(suff.k, lang.few)
    g_ref = ref_gain[w, p - 1]
    tok = Tokens(w, p, bucket, g_ref, ref_long[w, p - 1], freq)
    if len(w):
        rows += recovery_rows(dict(models), tok, names, near, "sufficiency", lang.seed)
        single = buckets(dep.k[w, p - 1], lang.few)
        rows += recovery_rows(dict(models), dataclasses.replace(tok, bucket=single), bucket_names(lang.few), near,
                              "single-position ablation", lang.seed)
    folder = out_dir / FOLDER
    write_csv(folder / RESULTS, rows, COLUMNS)
    beyond = ref_gain[:, near:]
    stats = {"reference_distant_gain_mean": float(beyond.mean()),
             "share_of_tokens_gaining_at_least_threshold": float((beyond >= lang.gain_threshold).mean()),
             "tokens_beyond_near": int(beyond.size), "measured": len(w), "gain_threshold": lang.gain_threshold,
             "recover_share": lang.recover_share,
             "k_histogram": np.bincount(suff.k).tolist() if len(w) else [],
             "reference_forward_tokens": suff.forward_tokens}
    atomic_write_json(folder / "recovery_summary.json", stats)
    if rows:
        atomic_write_bytes(folder / "recovery_by_bucket.png", render_recovery(rows, names))
    return recovery_markdown(rows, names, stats, near, lang)


def render_recovery(rows: list[dict[str, Any]], names: list[str]) -> bytes:
    sel = [r for r in rows if r["measure"] == "sufficiency" and r["bucket"] in names]
    labels = list(dict.fromkeys(r["model"] for r in sel))
    bars = []
    for name in names:
        found = {r["model"]: r for r in sel if r["bucket"] == name}
        vals = np.array([found[m]["stratified"] if m in found else np.nan for m in labels])
        lo = np.array([found[m]["stratified_lo"] if m in found else np.nan for m in labels])
        hi = np.array([found[m]["stratified_hi"] if m in found else np.nan for m in labels])
        bars.append((name, vals, np.stack([vals - lo, hi - vals])))
    return render_grouped_bars(labels, bars, "share of the reference's distant gain\nrecovered (stratified, 95% "
                               "window bootstrap)", "distant sparsity (sufficiency k)", guides=[1])


def _fmt(r: dict[str, Any], kind: str) -> str:
    v = r[kind]
    if not np.isfinite(v):
        return "n/a"
    if not np.isfinite(r[kind + "_lo"]):
        return f"{v:+.2f} (one window: no interval)"
    return f"{v:+.2f} [{r[kind + '_lo']:+.2f}, {r[kind + '_hi']:+.2f}]"


def recovery_markdown(rows: list[dict[str, Any]], names: list[str], stats: dict[str, Any], near: int,
                      lang: LanguageConfig) -> str:
    lines = ["", "### Gain recovered (issue 14)", "",
             f"The reference gains {stats['reference_distant_gain_mean']:.3f} nats per token on average from the "
             f"context more than {near} tokens back; {stats['share_of_tokens_gaining_at_least_threshold']:.1%} of the "
             f"{stats['tokens_beyond_near']} tokens past the training context gain >= {lang.gain_threshold} nats. "
             f"{stats['measured']} of them were measured. Distant sparsity k = the fewest distant tokens that, "
             f"restored into the last {near} tokens, recover {lang.recover_share:.0%} of the reference's gain "
             "(greedy, by single-position ablation effect and by restored-alone gain, the smaller). "
             f"k histogram (index = k): {stats['k_histogram']}.", ""]
    if not rows:
        return "\n".join(lines + ["No token passed the gain threshold: nothing to compare.", ""])
    lines += ["Gain recovered = the model's own distant gain (loss reading its last tokens minus loss reading the "
              "whole window) as a share of the reference's, per bucket; stratified = within position x "
              "reference-loss x token-frequency strata shared by every bucket; 95% intervals from a bootstrap over "
              "windows; seeds averaged.", ""]
    for measure in ("sufficiency", "single-position ablation"):
        sel = [r for r in rows if r["measure"] == measure]
        bnames = list(dict.fromkeys(r["bucket"] for r in sel if r["bucket"] != "all" and not is_difference(r["bucket"])))
        dnames = list(dict.fromkeys(r["bucket"] for r in sel if is_difference(r["bucket"])))
        lines += [f"By {measure} k (tokens: " + ", ".join(
            f"{b} {next(r['tokens'] for r in sel if r['bucket'] == b)}" for b in bnames) + "):", "",
                  "| model | seeds | " + " | ".join(f"{b}: raw" for b in bnames) + " | "
                  + " | ".join(f"{b}: stratified" for b in bnames) + " | all: raw |"
                  + "".join(f" {d}, paired: stratified |" for d in dnames),
                  "|---|---|" + "---|" * (2 * len(bnames) + 1 + len(dnames))]
        for model in dict.fromkeys(r["model"] for r in sel):
            by = {r["bucket"]: r for r in sel if r["model"] == model}
            lines.append(f"| {model} | {by['all']['seeds']} | "
                         + " | ".join(_fmt(by[b], "raw") if b in by else "n/a" for b in bnames) + " | "
                         + " | ".join(_fmt(by[b], "stratified") if b in by else "n/a" for b in bnames)
                         + f" | {_fmt(by['all'], 'raw')} |"
                         + "".join(f" {_fmt(by[d], 'stratified') if d in by else 'n/a'} |" for d in dnames))
        lines.append("")
    diffs = [r for r in rows if r["measure"] == "sufficiency" and is_difference(r["bucket"])]
    above = [r["model"] for r in diffs if r["stratified_lo"] > 0]
    below = [r["model"] for r in diffs if r["stratified_hi"] < 0]
    what = diffs[0]["bucket"] if diffs else difference_name(names, [0, len(names) - 1])
    lines.append(f"Stratified and paired over the same window draws, the sparsest bucket recovers more than the "
                 f"densest ({what}, interval above 0) for {len(above)} models ({', '.join(above) or 'none'}) and "
                 f"less (interval below 0) for {len(below)} ({', '.join(below) or 'none'}); for the rest the "
                 "interval holds 0 or a bucket is empty.")
    return "\n".join(lines) + "\n"
