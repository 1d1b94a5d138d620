"""The zoo finding: does a task's ground-truth sparsity / locality predict how far it length-generalizes?

Per (task, scheme, seed) model, the protocol's columns (issue 13, ``lengen.measures``): ``learned``
(exact match at the longest training length >= eval.learned_bar) and ``l_star`` (the longest length up
to which exact match stays above chance + l_star_level (1 - chance) at every length). Results written
before the protocol have neither; then learned = accuracy at the training length >= ``learned_at`` and
L* = the longest length up to which accuracy stays >= ``holds_at`` at every length. Tasks differ
in training length (their natural sizes differ), so a model is summarised by g = L* / L_train.
Per task and scheme, g is the median over the seeds that learned; models that did not learn are
excluded (a model that never fitted its training lengths says nothing about generalizing past them).

The predictors come from the task's ground truth (``lengen.tasks.structure``) at its training
length: mean k (sparsity) and mean span (locality, raw positions); coupled schemes also get the span
in coupled-id space. Spearman's rank correlation between predictor and g is computed over tasks, and
its 95% interval by a bootstrap that resamples tasks and, within each task, seeds. The theory
predicts a negative correlation (more, or more spread, dependencies: shorter reach).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lengen.errors import LengenError
from lengen.figures import png, pyplot
from lengen.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from lengen.report.results import read_results
from lengen.report.zoo_diagnose import Estimate, diagnose_models
from lengen.stats import spearman  # nan when either side is constant
from lengen.tasks import make_task
from lengen.tasks.structure import task_structure

PREDICTORS = ("k", "span", "id_span")
ESTIMATED = "k_est"  # the k lengen diagnose measures in the trained models (lengen.report.zoo_diagnose)


@dataclass
class Model:
    task: str
    scheme: str
    seed: int
    train_len: int
    in_dist: float
    learned: bool
    l_star: float  # L*, or nan when the model did not learn
    beyond: float  # mean accuracy over the lengths beyond training (Ruoss et al.'s kind of average)

    @property
    def g(self) -> float:
        return self.l_star / self.train_len


def models_from_rows(rows: list[dict[str, Any]], learned_at: float, holds_at: float) -> list[Model]:
    by_model: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_model[(r["task"], r["scheme"], int(r["seed"]))].append(r)
    out = []
    for (task, scheme, seed), rs in sorted(by_model.items()):
        rs.sort(key=lambda r: r["eval_len"])
        train_len = int(rs[0]["train_max_len"])
        at_train = [r["accuracy"] for r in rs if r["eval_len"] == train_len]
        if not at_train:
            raise LengenError(f"{task}/{scheme}/seed {seed}: no evaluation at the training length {train_len}")
        in_dist = float(at_train[0] if rs[0].get("in_dist_accuracy") is None else rs[0]["in_dist_accuracy"])
        learned = bool(rs[0]["learned"]) if "learned" in rs[0] else in_dist >= learned_at
        if "l_star" in rs[0] and rs[0]["l_star"] not in ("", None):
            l_star = float(rs[0]["l_star"])
        else:
            l_star = float(train_len)
            for r in rs:
                if r["eval_len"] < train_len:
                    continue
                if r["accuracy"] < holds_at:
                    break
                l_star = float(r["eval_len"])
        beyond = [r["accuracy"] for r in rs if r["eval_len"] > train_len]
        out.append(Model(task, scheme, seed, train_len, in_dist, learned, l_star if learned else math.nan,
                         float(np.mean(beyond)) if beyond else math.nan))
    return out


def task_predictors(run_dir: Path, tasks: dict[str, int]) -> dict[str, dict[str, float]]:
    """Ground-truth k, span and id span of each task at its training length (task_args from cell.json)."""
    args: dict[str, dict[str, Any]] = {}
    for cell in sorted((run_dir / "cells").glob("*/cell.json")):
        d = json.loads(cell.read_text(encoding="utf-8"))
        if args.setdefault(d["task"], d["task_args"]) != d["task_args"]:
            raise LengenError(f"task {d['task']} appears with different task_args; the zoo report needs one per task")
    out = {}
    for task, train_len in tasks.items():
        s = task_structure(make_task(task, **args.get(task, {})), train_len, samples=256).short
        out[task] = {"k": s.k.mean, "span": s.span.mean, "id_span": s.id_span.mean if s.id_span else math.nan}
    return out


@dataclass
class Correlation:
    scheme: str
    predictor: str
    n_tasks: int
    rho: float
    low: float
    high: float
    excluded: list[str]  # tasks of this scheme without a model that learned


def correlate(models: list[Model], predictors: dict[str, dict[str, float]], reps: int = 2000,
              seed: int = 0, estimated: dict[tuple[str, str], float] | None = None) -> list[Correlation]:
    """Spearman's rho per scheme and predictor; ``estimated`` adds the predictor ``k_est``, one value
    per (task, scheme): the k that ``lengen diagnose`` measured in that scheme's trained models."""
    rng = np.random.default_rng(seed)
    out = []
    for scheme in sorted({m.scheme for m in models}):
        mine = [m for m in models if m.scheme == scheme]
        per_task: dict[str, list[float]] = defaultdict(list)
        for m in mine:
            if m.learned:
                per_task[m.task].append(m.g)
        excluded = sorted({m.task for m in mine} - set(per_task))
        values = {name: {t: predictors[t][name] for t in per_task} for name in PREDICTORS}
        if estimated is not None:
            values[ESTIMATED] = {t: estimated.get((t, scheme), math.nan) for t in per_task}
        for name, value in values.items():
            tasks = [t for t in sorted(per_task) if not math.isnan(value[t])]
            if len(tasks) < 3:  # the zoo's minimum (the shared spearman defines rho from 2 points)
                continue
            x = np.array([value[t] for t in tasks])
            y = np.array([np.median(per_task[t]) for t in tasks])
            boot = []
            for _ in range(reps):
                pick = rng.integers(0, len(tasks), len(tasks))
                ys = [np.median(rng.choice(per_task[tasks[i]], len(per_task[tasks[i]]))) for i in pick]
                boot.append(spearman(x[pick], np.array(ys)))
            b = np.array([v for v in boot if not math.isnan(v)])
            low, high = (float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))) if len(b) else (math.nan,) * 2
            out.append(Correlation(scheme, name, len(tasks), spearman(x, y), low, high, excluded))
    return out


def render_scatter(models: list[Model], predictors: dict[str, dict[str, float]]) -> bytes:
    fig, ax = pyplot().subplots(figsize=(8, 5.5))
    schemes = sorted({m.scheme for m in models})
    for i, scheme in enumerate(schemes):
        per_task: dict[str, list[float]] = defaultdict(list)
        for m in models:
            if m.scheme == scheme and m.learned:
                per_task[m.task].append(m.g)
        xs = [predictors[t]["k"] for t in per_task]
        ys = [float(np.median(v)) for v in per_task.values()]
        jitter = 1 + 0.04 * (i - (len(schemes) - 1) / 2)
        ax.scatter([x * jitter for x in xs], ys, label=scheme, alpha=0.75)
        for t, x, y in zip(per_task, xs, ys, strict=True):
            ax.annotate(t, (x * jitter, y), fontsize=6, alpha=0.7, xytext=(3, 2), textcoords="offset points")
    plotted = any(m.learned for m in models)
    if plotted:
        ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no model learned in distribution", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("ground-truth k per output token (mean, at the training length)")
    ax.set_ylabel("L* / L_train (median over seeds that learned)")
    ax.set_title("Sparsity against length generalization (models that learned in distribution)")
    if plotted:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return png(fig)


def ruoss_direction(models: list[Model], treated: str = "randomized", baseline: str = "nope",
                    reps: int = 2000, seed: int = 0) -> dict[str, Any] | None:
    """Mean accuracy beyond the training length, randomized minus baseline, over tasks that have both
    (every model, learned or not, as Ruoss et al. average over all tasks), with a bootstrap over tasks."""
    out = compare_schemes(models, [treated], [baseline], reps, seed)
    if out is not None:
        out["treated"], out["baseline"] = treated, baseline
    return out


def _bootstrap_mean(diff: np.ndarray, reps: int, rng: np.random.Generator) -> tuple[float, float]:
    boot = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(reps)]
    return float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def compare_schemes(models: list[Model], treated: list[str], baseline: list[str], reps: int = 2000,
                    seed: int = 0) -> dict[str, Any] | None:
    """Treated minus baseline schemes, task by task, with bootstrap intervals over tasks.

    ``treated`` and ``baseline`` are lists of scheme labels pooled on their side (``coupled`` on the
    tasks with layout ids, ``ppc`` where ids depend on the content: one side, "made local"). Two measures:
    mean accuracy beyond the training length over every model (learned or not, as Ruoss et al. average),
    over tasks that both sides ran; and L*/L_train (median over the seeds that learned) over tasks where
    both sides have a model that learned. None when no task has both sides."""
    side = {label: "t" for label in treated} | {label: "b" for label in baseline}
    beyond: dict[tuple[str, str], list[float]] = defaultdict(list)
    g: dict[tuple[str, str], list[float]] = defaultdict(list)
    for m in models:
        if m.scheme in side:
            beyond[(m.task, side[m.scheme])].append(m.beyond)
            if m.learned:
                g[(m.task, side[m.scheme])].append(m.g)
    tasks = sorted({t for t, s in beyond if s == "t"} & {t for t, s in beyond if s == "b"})
    if not tasks:
        return None
    rng = np.random.default_rng(seed)
    acc = np.array([np.mean(beyond[(t, "t")]) - np.mean(beyond[(t, "b")]) for t in tasks])
    low, high = _bootstrap_mean(acc, reps, rng)
    out: dict[str, Any] = {"treated": treated, "baseline": baseline, "tasks": len(tasks),
                           "mean_difference": float(acc.mean()), "low": low, "high": high,
                           "per_task": dict(zip(tasks, acc.round(4).tolist(), strict=True))}
    both = [t for t in tasks if g.get((t, "t")) and g.get((t, "b"))]
    out["g_tasks"] = len(both)
    if both:
        dg = np.array([np.median(g[(t, "t")]) - np.median(g[(t, "b")]) for t in both])
        out["g_difference"], (out["g_low"], out["g_high"]) = float(dg.mean()), _bootstrap_mean(dg, reps, rng)
        out["g_per_task"] = {t: {"treated": float(np.median(g[(t, "t")])), "baseline": float(np.median(g[(t, "b")]))}
                             for t in both}
    return out


def parse_comparison(text: str) -> tuple[list[str], list[str]]:
    """``coupled,ppc:rope`` -> (["coupled", "ppc"], ["rope"])."""
    parts = text.split(":")
    sides = [[label.strip() for label in part.split(",") if label.strip()] for part in parts]
    if len(parts) != 2 or not all(sides):
        raise LengenError(f"--compare takes TREATED:BASELINE scheme labels (comma-separated on each side, e.g. "
                          f"coupled,ppc:rope), got {text!r}")
    return sides[0], sides[1]


def estimated_k(estimates: list[Estimate]) -> dict[tuple[str, str], float]:
    """Per (task, scheme): the median over diagnosed seeds of the mean estimated k."""
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in estimates:
        if not math.isnan(e.k_est):
            by[(e.task, e.scheme)].append(e.k_est)
    return {key: float(np.median(v)) for key, v in by.items()}


def write_zoo_report(run_dir: Path, learned_at: float = 0.9, holds_at: float = 0.9,
                     diagnose_samples: int = 0, compare: list[tuple[list[str], list[str]]] | None = None) -> Path:
    """Write zoo.md, zoo.json and zoo_scatter.png into ``run_dir``; returns the markdown's path.

    ``diagnose_samples`` > 0 also diagnoses every learned model on that many samples
    (``lengen.report.zoo_diagnose``) and correlates the estimated k with L*/L_train as well. ``compare``
    adds one ``compare_schemes`` section per (treated, baseline) pair of scheme-label lists."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.csv").is_file():
        raise LengenError(f"{run_dir}: no results.csv (run `lengen run experiments/zoo.yaml` first)")
    rows = read_results(run_dir / "results.csv")
    protocol = bool(rows) and "learned" in rows[0] and "l_star" in rows[0]
    models = models_from_rows(rows, learned_at, holds_at)
    predictors = task_predictors(run_dir, {m.task: m.train_len for m in models})
    estimates = diagnose_models(run_dir, [(m.task, m.scheme, m.seed, m.train_len) for m in models if m.learned],
                                diagnose_samples) if diagnose_samples > 0 else []
    correlations = correlate(models, predictors, estimated=estimated_k(estimates) if diagnose_samples > 0 else None)
    ruoss = ruoss_direction(models)
    comparisons = [c for c in (compare_schemes(models, t, b) for t, b in compare or []) if c is not None]
    atomic_write_bytes(run_dir / "zoo_scatter.png", render_scatter(models, predictors))
    atomic_write_json(run_dir / "zoo.json", {"models": [asdict(m) for m in models], "predictors": predictors,
                                             "correlations": [asdict(c) for c in correlations], "ruoss": ruoss,
                                             "comparisons": comparisons, "diagnosed": [asdict(e) for e in estimates],
                                             "learned_at": learned_at, "holds_at": holds_at})
    if protocol:
        rule = ("learned and L* are the protocol's columns: exact match >= eval.learned_bar at the training length; "
                "L* the longest length up to which exact match stays >= chance + eval.l_star_level (1 - chance)")
    else:
        rule = (f"learned: accuracy >= {learned_at} at the training length; L*: longest length up to which accuracy "
                f"stays >= {holds_at}")
    atomic_write_text(run_dir / "zoo.md", _markdown(models, predictors, correlations, ruoss, rule, estimates, comparisons))
    return run_dir / "zoo.md"


def estimate_full_run(run_dir: Path, full: Any, workers: int = 2) -> dict[str, float]:
    """Wall time of ``full`` (an ExperimentConfig) predicted from ``run_dir``'s per-step training and
    evaluation times per task, assuming no cell stops early (an upper bound at this machine's load).
    Evaluation time scales with the sample count; held-out curves are counted as half an evaluation each."""
    per_step: dict[str, list[float]] = defaultdict(list)
    per_eval: dict[str, list[float]] = defaultdict(list)
    samples = 0
    for rows_file in sorted((Path(run_dir) / "cells").glob("*/rows.json")):
        row = json.loads(rows_file.read_text(encoding="utf-8"))[0]
        per_step[row["task"]].append(row["train_wall_s"] / max(1, row["train_steps"]))
        per_eval[row["task"]].append(row["eval_wall_s"])
        samples = samples or int(row.get("n_eval") or 0)
    total, cells = 0.0, full.cells()
    missing = sorted({c.task for c in cells} - set(per_step))
    if missing:
        raise LengenError(f"{run_dir} has no timed cell of {', '.join(missing)}")
    for c in cells:
        evaluation = float(np.mean(per_eval[c.task])) * c.eval.samples / max(1, samples)
        curves = (c.train.steps // c.train.curve_every) * 0.5 * evaluation if c.train.curve_every else 0.0
        total += c.train.steps * float(np.mean(per_step[c.task])) + evaluation + curves
    return {"cells": len(cells), "worker_hours": total / 3600, "wall_hours": total / workers / 3600,
            "workers": workers}


def _markdown(models: list[Model], predictors: dict[str, dict[str, float]], correlations: list[Correlation],
              ruoss: dict[str, Any] | None, rule: str, estimates: list[Estimate] | None = None,
              comparisons: list[dict[str, Any]] | None = None) -> str:
    schemes = sorted({m.scheme for m in models})
    lines = ["# Task zoo: sparsity against length generalization\n",
             f"{rule}. Cell: median L*/L_train over the seeds that learned (learned/total seeds), '-' when none "
             f"learned. k, span, id span: ground truth at the training length.\n",
             "| task | k | span | id span | " + " | ".join(schemes) + " |",
             "|---|---|---|---|" + "---|" * len(schemes)]
    for task in sorted(predictors, key=lambda t: predictors[t]["k"]):
        p = predictors[task]
        cells = []
        for s in schemes:
            mine = [m for m in models if m.task == task and m.scheme == s]
            ok = [m.g for m in mine if m.learned]
            cells.append("" if not mine else (f"{np.median(ok):.2f} ({len(ok)}/{len(mine)})" if ok
                                              else f"- (0/{len(mine)})"))
        ids = "-" if math.isnan(p["id_span"]) else f"{p['id_span']:.1f}"
        lines.append(f"| {task} | {p['k']:.1f} | {p['span']:.1f} | {ids} | " + " | ".join(cells) + " |")
    lines += ["", "Spearman's rho between predictor and L*/L_train over tasks (95% bootstrap interval over tasks "
              "and seeds):", "", "| scheme | predictor | tasks | rho | 95% interval | excluded (no model learned) |",
              "|---|---|---|---|---|---|"]
    if not correlations:
        lines.append("| - | - | - | - | - | no scheme has 3 tasks with a model that learned |")
    for c in correlations:
        lines.append(f"| {c.scheme} | {c.predictor} | {c.n_tasks} | {c.rho:.2f} | [{c.low:.2f}, {c.high:.2f}] | "
                     f"{', '.join(c.excluded) or '-'} |")
    if estimates:
        lines += ["", "Diagnosed sparsity (`lengen diagnose` on each learned model; first, middle and last answer token of samples at "
                  "the training length): mean estimated k against the mean ground-truth k of the same tokens, and "
                  "the precision / recall of the estimated dependency sets. k_est in the correlation table is the "
                  "median over seeds.", "",
                  "| task | scheme | seed | k true | k est | precision | recall | note |", "|---|---|---|---|---|---|---|---|"]
        for e in sorted(estimates, key=lambda e: (e.task, e.scheme, e.seed)):
            if e.skipped:
                lines.append(f"| {e.task} | {e.scheme} | {e.seed} | - | - | - | - | skipped: {e.skipped} |")
            else:
                lines.append(f"| {e.task} | {e.scheme} | {e.seed} | {e.k_true:.2f} | {e.k_est:.2f} | "
                             f"{e.precision:.2f} | {e.recall:.2f} | {e.scored} answers |")
    if ruoss:
        lines += ["", f"Randomized minus NoPE, mean accuracy beyond the training length over {ruoss['tasks']} tasks "
                  f"(every model): {ruoss['mean_difference']:+.3f} [{ruoss['low']:+.3f}, {ruoss['high']:+.3f}]."]
    for cmp in comparisons or []:
        name = f"{'/'.join(cmp['treated'])} minus {'/'.join(cmp['baseline'])}"
        lines += ["", f"**{name}** over {cmp['tasks']} tasks: mean accuracy beyond the training length (every model) "
                  f"{cmp['mean_difference']:+.3f} [{cmp['low']:+.3f}, {cmp['high']:+.3f}]; L*/L_train over the "
                  f"{cmp['g_tasks']} tasks where both sides learned: "
                  + (f"{cmp['g_difference']:+.2f} [{cmp['g_low']:+.2f}, {cmp['g_high']:+.2f}]." if cmp["g_tasks"] else "-."),
                  "", "| task | accuracy beyond, difference | L*/L treated | L*/L baseline |", "|---|---|---|---|"]
        for task, d in cmp["per_task"].items():
            gs = cmp.get("g_per_task", {}).get(task)
            lines.append(f"| {task} | {d:+.3f} | " + (f"{gs['treated']:.2f} | {gs['baseline']:.2f} |" if gs else "- | - |"))
    return "\n".join(lines) + "\n"
