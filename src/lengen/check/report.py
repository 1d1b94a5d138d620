"""The self-contained HTML report of `lengen check` (figures embedded as base64 PNG; also saved as PNG)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from lengen.check.dependence import Dependence
from lengen.check.position_loss import curve
from lengen.figures import png, pyplot
from lengen.io import atomic_write_bytes, atomic_write_text


def figures(summary: dict[str, Any], dep: Dependence, losses2: dict[str, np.ndarray],
            near2: dict[str, np.ndarray], losses3: dict[str, np.ndarray]) -> dict[str, bytes]:
    plt = pyplot()
    n = summary["context"]
    out = {}
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    widths = sorted(m for m in dep.damage if m < dep.context)
    a.plot(widths, [float(np.mean(dep.damage[m])) for m in widths], "o-", label="mean")
    a.plot(widths, [float(np.median(dep.damage[m])) for m in widths], "s--", label="median")
    a.axvline(n, color="grey", ls=":", label=f"N = {n}")
    a.set_xscale("log", base=2)
    a.set(xlabel="context kept (tokens)", ylabel="log-prob lost (nats)", title="Step 1: truncation damage")
    a.legend(fontsize=8)
    bins = np.unique(np.geomspace(max(1, dep.cfg.local), dep.context, 12).astype(int))
    b.hist(dep.reach, bins=bins)
    b.axvline(n, color="grey", ls=":")
    b.set_xscale("log", base=2)
    b.set(xlabel="reach of the sufficiency set (tokens)", ylabel="tokens", title="Step 1: how far back")
    out["step1_dependence.png"] = png(fig, dpi=90, tight=True)

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    for label, lo in losses2.items():
        xs, ys = curve(lo, 16)
        a.plot(xs, ys, label=label, lw=2 if label == "reference" else 1.2, ls="--" if label == "reference" else "-")
        if label != "reference":
            xs, ys = curve(lo - near2[label], 16)
            b.plot(xs, ys, label=label)
    for ax in (a, b):
        for m in (n, 2 * n, 4 * n):
            ax.axvline(m, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=8)
    a.set(xlabel="position (tokens of context)", ylabel="loss (nats)",
          title=f"Step 2: loss, trained at N = {n} (reference: at 8N)")
    b.axhline(0, color="black", lw=0.6)
    b.set(xlabel="position (tokens of context)", ylabel="nats",
          title="rise: loss minus loss of the same tokens read with their last N")
    out["step2_loss_by_position.png"] = png(fig, dpi=90, tight=True)

    if losses3:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for label, lo in losses3.items():
            xs, ys = curve(lo, 32)
            ax.plot(xs, ys, label=label)
        ax.axvline(n, color="grey", ls=":")
        ax.set(xlabel="position", ylabel="loss (nats)", title=f"Step 3: your model to 2N (N = {n}), RoPE scalings")
        ax.legend(fontsize=8)
        out["step3_existing_model.png"] = png(fig, dpi=90, tight=True)
    return out


def _loss_ranges(title: str, first: str, rise: str, tables: dict[str, Any]) -> list[str]:
    """A section with one row per (model, position range): loss and its rise, each with its interval."""
    e = html.escape
    rows = [f"<h2>{e(title)}</h2><table><tr><th>{e(first)}</th><th>range</th><th>loss</th><th>95% CI</th>"
            f"<th>{e(rise)}</th><th>95% CI</th></tr>"]
    for label, t in tables.items():
        for r in t["ranges"]:
            rows.append(f"<tr><td>{e(label)}</td><td>[{r['start']}, {r['end']})</td><td>{r['loss']:.3f}</td>"
                        f"<td>{_fmt(r['loss_ci'])}</td><td>{r['rise']:+.3f}</td><td>{_fmt(r['rise_ci'])}</td></tr>")
    return [*rows, "</table>"]


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3f}"
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(v, float) for v in x):
        return f"[{x[0]:.3f}, {x[1]:.3f}]"
    return str(x)


def write_report(out: Path, summary: dict[str, Any], dep: Dependence, losses2: dict[str, np.ndarray],
                 near2: dict[str, np.ndarray], losses3: dict[str, np.ndarray]) -> Path:
    figs = figures(summary, dep, losses2, near2, losses3)
    for name, data in figs.items():
        atomic_write_bytes(out / name, data)
    e = html.escape
    v = summary["verdict"]
    s1 = summary["step1"]
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>lengen check</title><style>"
             "body{font-family:sans-serif;max-width:64em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px}img{max-width:100%}</style></head><body>",
             f"<h1>lengen check: {e(str(summary['data']['source']))} at context N = {summary['context']}</h1>",
             f"<h2>Verdict: {e(v['headline'])}</h2><p>{e(v['reason'])}</p>",
             "<p>Next:</p><ul>" + "".join(f"<li>{e(x)}</li>" for x in v["next_steps"]) + "</ul>",
             f"<p>Thresholds: {e(str(v['thresholds']))} (calibrated on lengen's synthetic corpora, docs/check.md). "
             f"Step 2 agrees with the verdict: {e(str(v['step2_agrees']))}.</p>",
             "<h2>Step 1: how much context each prediction needs</h2>",
             f"<p>Model: {e(str(s1['model']))}; {s1['tokens']} scored tokens, each with a context of "
             f"{s1['context']} tokens; 95% bootstrap intervals over tokens.</p><table>"]
    for key in ("far_gain", "far_gain_ci", "share_needing_beyond_n", "share_needing_beyond_n_ci",
                "share_reach_beyond_n", "share_reach_beyond_n_ci", "dense_tokens_p90", "dense_tokens_p90_ci",
                "median_damage_at_reach", "spearman_reach_damage", "median_damage_inside"):
        parts.append(f"<tr><th>{e(key)}</th><td>{e(_fmt(s1[key]))}</td></tr>")
    parts.append("</table>")
    parts += _loss_ranges("Step 2: short train, long eval", "model", "rise over [N/2, N)", summary["step2"])
    if summary.get("step3"):
        parts += _loss_ranges("Step 3: your model beyond its context", "RoPE", "rise", summary["step3"])
    parts.append("<h2>Cost of each option</h2><ul>" +
                 "".join(f"<li>{e(k)}: {e(str(c))}</li>" for k, c in summary["costs"].items()) + "</ul>")
    parts.append("<h2>Figures</h2>")
    parts += [f"<p><img alt='{e(name)}' src='data:image/png;base64,{base64.b64encode(d).decode()}'></p>"
              for name, d in figs.items()]
    stages = ", ".join(f"{e(k)} {v:.0f} / {summary.get('stage_cpu_s', {}).get(k, float('nan')):.0f}"
                       for k, v in summary.get("stage_s", {}).items())
    s1 = summary["step1"]
    budget = (f" Step 1 measured {s1['tokens']} of {s1['tokens_planned']} planned tokens"
              f"{' (stopped by its time budget of ' + format(s1['budget_s'], '.0f') + ' s)' if s1.get('stopped_by_budget') else ''}."
              if "tokens_planned" in s1 else "")
    parts.append(f"<p>Data: {e(str(summary['data']))}. Wall time {summary['wall_s']:.0f} s; by stage (wall / CPU s): "
                 f"{stages}.{budget}</p></body></html>")
    path = out / "report.html"
    atomic_write_text(path, "\n".join(parts))
    return path
