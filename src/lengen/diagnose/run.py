"""A diagnosis run: rows in chunks, partial results written atomically, resumable, then a summary."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lengen.diagnose.ablation import (
    AblationConfig,
    DependencyEstimate,
    choose_baseline,
    estimate_dependencies,
    truncation_grid,
    truncation_profile,
)
from lengen.diagnose.shared_rows import estimate_shared_rows
from lengen.diagnose.sources import ModelHandle, Queries
from lengen.errors import LengenError
from lengen.io import atomic_write_json

PARTIAL_FILE = "partial.json"
RECORDED_EFFECTS = 128  # per scored token, the largest single-position effects kept in the records


@dataclass
class RunSettings:
    ablation: AblationConfig = field(default_factory=AblationConfig)
    chunk_rows: int = 32  # rows per saved chunk
    baseline_candidates: int = 8  # frequent tokens considered as replacements
    baseline_pilot: int = 32  # rows used to measure how much each candidate disturbs predictions
    truncation: bool = True
    progress: bool = True


def _fingerprint(identity: dict[str, Any], queries: Queries) -> str:
    h = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode())
    h.update(queries.tokens.numpy().tobytes())
    h.update(queries.target.numpy().tobytes())
    h.update(json.dumps(queries.classes).encode())
    return h.hexdigest()


def _start_state(queries: Queries, cfg: AblationConfig, identity: dict[str, Any], partial: Path | None,
                 resume: bool) -> dict[str, Any]:
    """A fresh state, or the one saved in ``partial`` by an interrupted run of the same identity and data."""
    fingerprint = _fingerprint({**identity, "ablation": asdict(cfg)}, queries)
    state: dict[str, Any] = {"fingerprint": fingerprint, "identity": identity, "ablation": asdict(cfg),
                             "records": [], "truncation": {}, "forward_rows": 0.0, "wall_s": 0.0,
                             "rows_total": int(queries.tokens.shape[0]), "window": int(queries.tokens.shape[1]),
                             "finished": False, "meta": {k: v for k, v in queries.meta.items()
                                                         if k != "scored_positions"}}
    if partial is not None and partial.is_file():
        try:
            saved = json.loads(partial.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            saved = None
        if resume and saved is not None and saved.get("fingerprint") == fingerprint:
            state = saved
        elif resume and saved is not None:
            raise LengenError(f"{partial} was written by a different run (model, data or settings differ); "
                              "use another --out folder or --restart")
    return state


def _records(est: DependencyEstimate, queries: Queries, lo: int, shared: bool,
             min_effect: float) -> list[dict[str, Any]]:
    """One JSON record per scored prediction of a chunk starting at row ``lo``."""
    out = []
    distances = est.distances()
    t_len = est.effects.shape[1]
    for a in range(int(est.k.numel())):
        eff = torch.nan_to_num(est.effects[a], nan=0.0)
        top = torch.argsort(eff, descending=True)[:RECORDED_EFFECTS]
        rec: dict[str, Any] = {
            # the largest single-position effects as [distance, nats], so k can be recomputed for
            # other --min-effect / --share values without rerunning the model
            "effects": [[t_len - 1 - int(j), round(float(eff[j]), 4)] for j in top if float(eff[j]) >= min_effect],
            "k": int(est.k[a]), "censored": bool(est.censored[a]), "distances": distances[a],
            "positions": est.dependencies[a], "logprob": float(est.logprob[a]),
            "total_effect": float(est.total_effect[a]), "ablated": int(est.ablated[a]),
            "ablatable": int(est.ablatable[a]),
        }
        if queries.truth is not None and not shared:
            rec["truth"] = queries.truth[lo + a]
        out.append(rec)
    return out


def run_diagnosis(handle: ModelHandle, queries: Queries, settings: RunSettings, out_dir: Path | None,
                  identity: dict[str, Any], resume: bool = True) -> dict[str, Any]:
    """Estimate every row; returns the raw results (records, truncation sums, cost, config).

    With ``out_dir``, results so far are saved after each chunk to ``partial.json`` (atomic replace);
    a later call with the same identity and data continues after the last saved chunk.
    """
    cfg = settings.ablation
    cfg.validate()
    handle.check_length(queries.tokens.shape[1], "a context window")
    if int(queries.tokens.max()) >= handle.vocab_size:
        raise LengenError(f"the data holds token id {int(queries.tokens.max())} but the model's vocabulary "
                          f"has {handle.vocab_size} tokens")
    partial = None if out_dir is None else Path(out_dir) / PARTIAL_FILE
    state = _start_state(queries, cfg, identity, partial, resume)
    shared = queries.target.dim() == 2  # each row scores its last S predictions (estimate_shared_rows)
    per_row = int(queries.target.shape[1]) if shared else 1
    last_target = queries.target[:, -1] if shared else queries.target
    state.setdefault("scored_per_row", per_row)
    if "baseline" not in state:
        chosen, disturbance = choose_baseline(handle.logits, queries.tokens, last_target, queries.ablatable,
                                              cfg.replacements + 1, settings.baseline_candidates,
                                              settings.baseline_pilot, batch_rows=cfg.batch_rows)
        state["baseline"], state["baseline_disturbance"] = chosen.tolist(), disturbance
    baseline = torch.tensor(state["baseline"], dtype=torch.long)
    n = queries.tokens.shape[0]
    start_row = len(state["records"]) // per_row
    grid = truncation_grid(queries.tokens.shape[1])
    chunk = max(1, settings.chunk_rows // per_row)
    bar = tqdm(total=n * per_row, initial=start_row * per_row, disable=not settings.progress, unit="tok",
               desc="diagnose", dynamic_ncols=True, leave=False)
    for lo in range(start_row, n, chunk):
        hi = min(n, lo + chunk)
        t0 = time.perf_counter()
        if shared:
            est = estimate_shared_rows(handle.last_logits, queries.tokens[lo:hi], queries.target[lo:hi],
                                       queries.ablatable[lo:hi], baseline, cfg, handle.suffix_logits)
        else:
            est = estimate_dependencies(handle.logits, queries.tokens[lo:hi], queries.target[lo:hi],
                                        queries.ablatable[lo:hi], baseline, cfg, handle.embedding, queries.classes)
        rows = est.forward_rows
        if settings.truncation:  # of each row's last prediction
            prof = truncation_profile(handle.logits, queries.tokens[lo:hi], last_target[lo:hi], grid,
                                      cfg.batch_rows)
            for m, loss in prof.items():
                s = state["truncation"].setdefault(str(m), [0.0, 0])
                s[0] += loss * (hi - lo)
                s[1] += hi - lo
            rows += sum(min(m, queries.tokens.shape[1]) for m in grid) / queries.tokens.shape[1] * (hi - lo)
        state["records"] += _records(est, queries, lo, shared, cfg.min_effect)
        state["forward_rows"] += rows
        state["wall_s"] += time.perf_counter() - t0
        if partial is not None:
            atomic_write_json(partial, state)
        bar.update((hi - lo) * per_row)
    bar.close()
    state["finished"] = True
    if partial is not None:
        atomic_write_json(partial, state)
    return state


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else float("nan")


def summarize(state: dict[str, Any], far: list[int] | None = None) -> dict[str, Any]:
    """Statistics of a finished (or partial) run: k, distances, truncation, cost, validation."""
    recs = state["records"]
    window = int(state["window"])
    ks = [r["k"] for r in recs]
    depends = [r for r in recs if r["k"] > 0]
    max_dist = [max(r["distances"]) for r in depends]
    spread = [max(r["positions"]) - min(r["positions"]) + 1 for r in depends]
    far = far or [m for m in truncation_grid(window) if m < window]
    out: dict[str, Any] = {
        "scored_tokens": len(recs),
        "window": window,
        "k_mean": float(np.mean(ks)) if ks else float("nan"),
        "k_median": _quantile(ks, 0.5),
        "k_p90": _quantile(ks, 0.9),
        "k_max": max(ks) if ks else 0,
        "k_counts": {str(v): int(c) for v, c in zip(*np.unique(ks, return_counts=True), strict=True)} if ks else {},
        "censored_share": float(np.mean([r["censored"] for r in recs])) if recs else float("nan"),
        "context_free_share": float(np.mean([k == 0 for k in ks])) if ks else float("nan"),
        "distance_median": _quantile([d for r in recs for d in r["distances"]], 0.5),
        "max_distance_p90": _quantile(max_dist, 0.9),
        "spread_p90": _quantile(spread, 0.9),
        "farther_than": {str(m): sum(d >= m for d in max_dist) / max(1, len(recs)) for m in far},
        "truncation": {m: s[0] / s[1] for m, s in sorted(state["truncation"].items(), key=lambda x: int(x[0]))},
        "forward_rows_per_token": state["forward_rows"] / max(1, len(recs)),
        "ablated_share": float(np.sum([r["ablated"] for r in recs]) / max(1, np.sum([r["ablatable"] for r in recs]))),
        "tokens_per_s": len(recs) / state["wall_s"] if state["wall_s"] > 0 else float("nan"),
        "wall_s": state["wall_s"],
        "finished": state["finished"],
    }
    if recs and "truth" in recs[0]:
        out["validation"] = validation(recs)
    return out


def validation(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision/recall of estimated vs true dependency sets (micro-averaged) and exact-k share, per true k."""
    by_k: dict[int, list[dict[str, Any]]] = {}
    for r in recs:
        by_k.setdefault(len(r["truth"]), []).append(r)

    def scores(rs: list[dict[str, Any]]) -> dict[str, float]:
        hit = sum(len(set(r["positions"]) & set(r["truth"])) for r in rs)
        est = sum(len(r["positions"]) for r in rs)
        true = sum(len(r["truth"]) for r in rs)
        return {"samples": len(rs), "precision": hit / est if est else float("nan"),
                "recall": hit / true if true else float("nan"),
                "k_exact": float(np.mean([r["k"] == len(r["truth"]) for r in rs])),
                "set_exact": float(np.mean([sorted(r["positions"]) == sorted(r["truth"]) for r in rs]))}

    correct = [r for r in recs if r["logprob"] > -0.6931]  # p(target) > 1/2: the model solves this sample
    out = {"all": scores(recs), "by_true_k": {str(k): scores(v) for k, v in sorted(by_k.items())}}
    if correct:
        out["model_correct"] = scores(correct)
        by_k_correct: dict[int, list[dict[str, Any]]] = {}
        for r in correct:
            by_k_correct.setdefault(len(r["truth"]), []).append(r)
        out["model_correct_by_true_k"] = {str(k): scores(v) for k, v in sorted(by_k_correct.items())}
    return out
