"""Markdown and self-contained HTML report of a diagnosis, with figures and a plain verdict."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lengen.io import atomic_write_bytes, atomic_write_text


@dataclass(frozen=True)
class Thresholds:
    """Verdict thresholds, calibrated by the lab's sparsity experiment (README, "Sparsity":
    `lengen run experiments/sparsity.yaml`; sparse_parity, NoPE and RoPE, trained on lengths 8-20).
    There, k = 1 held >= 99% accuracy to 4x the training length (NoPE to 8x), while every k from 2 to 6
    stayed near its training accuracy at most to about 2x and then fell towards chance. The distance
    threshold is our choice, not yet calibrated by a lab experiment."""

    strict_k: int = 1  # 90th percentile of effective k at most this: the regime that held to 4-8x
    sparse_k: int = 4  # at most this: sparse, the regime that held to about 2x
    far: int = 64  # a dependency this many tokens back or more is "far"
    far_share: float = 0.10  # at most this share of scored tokens with a far dependency: local


def verdict(summary: dict[str, Any], th: Thresholds) -> tuple[str, str]:
    """(headline, explanation) in plain language."""
    p90 = summary["k_p90"]
    far_share = _far_share(summary, th.far)
    sparse = p90 <= th.sparse_k
    local = far_share <= th.far_share
    facts = (f"90% of predictions depend on at most {p90:g} context tokens (thresholds {th.strict_k} and "
             f"{th.sparse_k}); {far_share:.1%} of predictions need a token {th.far} or more positions back "
             f"(threshold {th.far_share:.0%}).")
    if summary.get("censored_share", 0) > 0.1:
        facts += (f" Caution: for {summary['censored_share']:.0%} of predictions the search hit its "
                  "ablation limit, so their k is a lower bound.")
    if p90 <= th.strict_k and local:
        return "Very sparse and local: length generalization is likely (to 4-8x in the lab).", facts
    if sparse and local:
        return ("Sparse and local: expect length generalization to about 2x, then degradation; "
                "position coupling (or PPC when the needed positions depend on content) may extend it."), facts
    if sparse:
        return ("Sparse but far: expect degradation with plain positions; try position coupling "
                "(or PPC when the needed positions depend on content)."), facts
    return "Dense: expect degradation beyond the training length.", facts


def _far_share(summary: dict[str, Any], far: int) -> float:
    """Share of scored tokens with a dependency at distance >= ``far`` (exact when ``far`` is on the grid)."""
    shares = {int(m): v for m, v in summary["farther_than"].items()}
    eligible = [m for m in shares if m <= far]
    return shares[max(eligible)] if eligible else 1.0


def _figures(summary: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out: dict[str, bytes] = {}

    def save(name: str, fig: Any) -> None:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        out[name] = buf.getvalue()

    ks = [r["k"] for r in records]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = np.arange(0, max(ks + [1]) + 2) - 0.5
    ax.hist(ks, bins=bins.tolist(), color="#4477aa")
    ax.set_xlabel("effective k (context tokens needed)")
    ax.set_ylabel("scored tokens")
    ax.set_title("Effective k")
    save("k_hist.png", fig)

    dists = [d for r in records for d in r["distances"]]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if dists:
        edges = np.unique(np.round(np.logspace(0, np.log10(summary["window"] + 1), 20)).astype(int)) - 1
        ax.hist(dists, bins=np.concatenate([[-0.5], edges[1:] - 0.5]).tolist(), color="#228833")
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("distance back (0 = the token just read)")
    ax.set_ylabel("dependencies")
    ax.set_title("Dependency distances")
    save("distance_hist.png", fig)

    far = {int(m): v for m, v in summary["farther_than"].items()}
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(list(far), list(far.values()), marker="o", color="#aa3377")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1)
    ax.set_xlabel("N (tokens back)")
    ax.set_ylabel("share of scored tokens")
    ax.set_title("Share needing context N or more tokens back")
    save("farther_than.png", fig)

    trunc = {int(m): v for m, v in summary["truncation"].items()}
    if trunc:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(list(trunc), list(trunc.values()), marker="o", color="#ee6677")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context kept (last m tokens)")
        ax.set_ylabel("loss (nats)")
        ax.set_title("Context-truncation profile")
        save("truncation.png", fig)
    return out


def _tables(summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    rows = [
        ["scored tokens", f"{summary['scored_tokens']}"],
        ["context window", f"{summary['window']}"],
        ["effective k: mean / median / p90 / max",
         f"{summary['k_mean']:.2f} / {summary['k_median']:g} / {summary['k_p90']:g} / {summary['k_max']}"],
        ["predictions with k = 0 (context ignored)", f"{summary['context_free_share']:.1%}"],
        ["k censored (search hit its limit)", f"{summary['censored_share']:.1%}"],
        ["median dependency distance", f"{summary['distance_median']:g}"],
        ["p90 of the farthest dependency", f"{summary['max_distance_p90']:g}"],
        ["cost: forward passes per scored token", f"{summary['forward_rows_per_token']:.1f}"],
        ["positions ablated / ablatable", f"{summary['ablated_share']:.1%}"],
        ["throughput (scored tokens/s)", f"{summary['tokens_per_s']:.2f}"],
    ]
    tables = [("Summary", ["quantity", "value"], rows)]
    far = [[f">= {m}", f"{v:.1%}"] for m, v in summary["farther_than"].items()]
    tables.append(("Share of predictions needing context N or more tokens back", ["N", "share"], far))
    if summary["truncation"]:
        tables.append(("Context truncation", ["last m tokens kept", "loss (nats)"],
                       [[str(m), f"{v:.3f}"] for m, v in summary["truncation"].items()]))
    if "validation" in summary:
        v = summary["validation"]
        vr = [[k, str(s["samples"]), f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['k_exact']:.3f}"]
              for k, s in [("all", v["all"]), *v["by_true_k"].items(),
                           *([("all, model correct (p > 1/2)", v["model_correct"])] if "model_correct" in v else [])]]
        tables.append(("Validation against the task's ground truth",
                       ["true k", "samples", "precision", "recall", "estimated k = true k"], vr))
    return tables


def write_report(out_dir: Path, summary: dict[str, Any], records: list[dict[str, Any]], title: str,
                 th: Thresholds, notes: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNG files) and a self-contained ``report.html``."""
    out_dir = Path(out_dir)
    figs = _figures(summary, records)
    for name, data in figs.items():
        atomic_write_bytes(out_dir / name, data)
    head, why = verdict(summary, th)
    tables = _tables(summary)
    notes = notes or []
    th_text = (f"Thresholds: very sparse when the 90th percentile of k is at most {th.strict_k}, sparse when at "
               f"most {th.sparse_k} (from the lab's sparsity experiment: on sparse_parity, k = 1 held to 4-8x the "
               "training length, k = 2-6 to about 2x); local when at most "
               f"{th.far_share:.0%} of predictions need a token {th.far} or more positions back (our choice, "
               "not yet calibrated).")

    md = [f"# {title}", "", f"**Verdict: {head}**", "", why, "", th_text, ""]
    md += [f"- {n}" for n in notes] + ([""] if notes else [])
    for name, cols, rows in tables:
        md += [f"## {name}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        md += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    md += ["## Figures", ""] + [f"![{n}]({n})" for n in figs] + [""]
    md_path = out_dir / "report.md"
    atomic_write_text(md_path, "\n".join(md))

    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:"
             "collapse}td,th{border:1px solid #ccc;padding:2px 8px}img{max-width:48%}</style></head><body>",
             f"<h1>{e(title)}</h1><p><b>Verdict: {e(head)}</b></p><p>{e(why)}</p><p>{e(th_text)}</p>"]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    for name, cols, rows in tables:
        parts.append(f"<h2>{e(name)}</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    parts.append("<h2>Figures</h2>")
    parts += [f"<img alt='{e(n)}' src='data:image/png;base64,{base64.b64encode(d).decode()}'>" for n, d in figs.items()]
    parts.append("</body></html>")
    html_path = out_dir / "report.html"
    atomic_write_text(html_path, "\n".join(parts))
    return md_path, html_path
