"""`lengen check`: the three steps and the verdict, cached step by step in the output folder.

The folder's ``check.json`` holds the settings that decide the results; a rerun with the same settings
continues where it stopped (step 1 in batches of tokens, each small model, each RoPE variant), and a
run with different settings into the same folder is refused.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lengen.check import data as D
from lengen.check.dependence import Dependence, DependenceConfig, measure_many
from lengen.check.existing import load_hf, variant_losses
from lengen.check.lm import LM, hf_lm, lengen_lm, target_logprob
from lengen.check.position_loss import bootstrap_ci, edges_for, range_means, ranges_table
from lengen.check.report import write_report
from lengen.check.shorttrain import SmallLM, train_small
from lengen.check.synthetic import synthetic_documents
from lengen.check.verdict import decide
from lengen.errors import LengenError
from lengen.io import atomic_write_json, ensure_writable_dir
from lengen.stats import spearman  # nan when either side is constant
from lengen.text.length_eval import near_context_losses
from lengen.text.tokenizers import hf_text_tokenizer

SMALL_VOCAB = 2048  # ids kept for the small lengen models (the rest share one unknown id)
DAMAGE = 0.1  # nats: a token "needs context beyond N" when truncating to N costs more than this


@dataclass
class CheckSettings:
    data: str | None
    synthetic: str | None = None
    field: str | None = None
    model: str | None = None
    context: int | None = None
    quick: bool = False
    tokenizer: str = "gpt2"
    seed: int = 0
    max_tokens: int | None = None  # read at most this many tokens of the data (None: all)

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        if self.data and self.data not in ("kjv", "shakespeare"):
            d["data"] = str(Path(self.data).expanduser().resolve())
        if self.model:
            d["model"] = str(Path(self.model).expanduser().resolve())
        return d


@dataclass
class Plan:
    steps: int
    batch: int
    dep_tokens: int
    eval_windows: int
    existing_windows: int
    dep_budget_s: float | None = None  # step 1 stops starting new batches of tokens after this (None: no cap)
    dep_minimum: int = 32  # ... but measures at least this many tokens
    existing_points: int = 32  # step 3: positions in [N, 2N] where the near-context loss is read (N tokens each)


# dep_budget_s only binds with --model (a 135M model runs ~1,000-2,500 forward tokens per scored token at
# N = 32, about 5-10 s on an idle 2-core machine); the small reference measures 48 tokens in ~10 s
PLANS = {"quick": Plan(steps=300, batch=16, dep_tokens=48, eval_windows=16, existing_windows=4,
                       dep_budget_s=60.0, dep_minimum=16, existing_points=8),
         "default": Plan(steps=1500, batch=16, dep_tokens=192, eval_windows=64, existing_windows=8,
                         dep_budget_s=600.0, dep_minimum=32, existing_points=32)}


def schemes(n: int) -> list[SmallLM]:
    """The baseline first, then the positional changes tried."""
    return [SmallLM(position="rope", label="rope"),
            SmallLM(position="rope", pose_target=8 * n, label="rope+pose"),
            SmallLM(position="alibi", label="alibi")]


class Folder:
    def __init__(self, out: Path, identity: dict[str, Any]) -> None:
        self.out = ensure_writable_dir(out)
        path = self.out / "check.json"
        if path.is_file():
            saved = self.load("check.json")
            if not isinstance(saved, dict):
                raise LengenError(f"{path} is not the settings of a lengen check; use another --out")
            if saved != identity:
                diff = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
                raise LengenError(f"{out} holds a check with other settings ({', '.join(diff)}); use another --out")
        else:
            atomic_write_json(path, identity)

    def load(self, name: str) -> Any:
        path = self.out / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8; the file is left as it is
            raise LengenError(f"{path} cannot be read as JSON ({type(e).__name__}); move it away or use another "
                              "--out") from None

    def save(self, name: str, obj: Any) -> None:
        atomic_write_json(self.out / name, obj)


def _documents(s: CheckSettings, n: int) -> D.Documents:
    if s.synthetic:
        return synthetic_documents(s.synthetic, n, tokens=s.max_tokens or 200_000, seed=s.seed)
    if not s.data:
        raise LengenError("give DATA or --synthetic KIND")
    return D.read_data(s.data, s.field)


def _streams(docs: D.Documents, s: CheckSettings, tokenizer: Any, model_vocab: int) -> D.TokenStreams:
    if docs.is_ids:
        return D.tokenize(docs, None, 0, model_vocab, "ids")
    if tokenizer is not None:
        tok = hf_text_tokenizer(tokenizer)
        streams = D.tokenize(docs, tok.encode, tok.separator[0], max(model_vocab, tok.vocab_size), tok.name)
    else:
        encode, eot, vocab = D.text_encoder(s.tokenizer)
        streams = D.tokenize(docs, encode, eot, vocab, s.tokenizer)
    if s.max_tokens:
        streams.train = streams.train[: int(s.max_tokens * 0.9)]
        streams.validation = streams.validation[: max(int(s.max_tokens * 0.1), 1)]
    return streams


def _need(streams: D.TokenStreams, n: int, plan: Plan) -> None:
    long = 8 * n + 1
    if len(streams.train) < 4 * long or len(streams.validation) < long + 1:
        raise LengenError(f"the data is too short for a check at context {n}: it needs at least {4 * long} training "
                          f"and {long + 1} validation tokens (windows of 8N = {8 * n}), has {len(streams.train)} "
                          f"and {len(streams.validation)}; use a smaller --context or more data")


def _samples(stream: np.ndarray, count: int, length: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng([seed, length, 7])
    starts = rng.integers(0, len(stream) - length + 1, size=count)
    return torch.from_numpy(stream[starts[:, None] + np.arange(length)[None, :]].astype(np.int64))


def dependence_config(n: int, donors: int = 3) -> DependenceConfig:
    chunk = max(1, n // 8)
    widths = sorted({w for w in (4, 8, 16, 32, 64, 128, 256, 512, 1024, n, 2 * n) if w < 4 * n})
    return DependenceConfig(local=4, chunk=chunk, widths=widths, donors=donors)


def step1(lm: LM, streams: D.TokenStreams, n: int, plan: Plan, folder: Folder, seed: int,
          progress: bool, donors: int = 3) -> tuple[Dependence, dict[str, Any]]:
    cfg = dependence_config(n, donors)
    c = 4 * n + cfg.local
    rows = _samples(streams.validation, plan.dep_tokens, c + 1, seed)
    # what replaces the unkept context in the sufficiency tests: other stretches of the same data
    stretches = [_samples(streams.validation, plan.dep_tokens, c, seed + 3 + i) for i in range(cfg.donors)]
    saved = folder.load("step1.json") or {"parts": [], "closed": False}
    parts = [Dependence.from_dict(p) for p in saved["parts"]]
    if saved["closed"]:  # an earlier run stopped at its time budget: reuse what it measured, as it was
        dep = Dependence.concat(parts)
    else:
        dep = measure_many(lm, rows[:, :-1], rows[:, -1], cfg, batch=16, progress=progress, done=parts,
                           save=lambda ps: folder.save("step1.json", {"parts": [p.to_dict() for p in ps],
                                                                      "closed": False}),
                           donors=torch.stack(stretches, 1), budget_s=plan.dep_budget_s, minimum=plan.dep_minimum)
        folder.save("step1.json", {"parts": [dep.to_dict()], "closed": True})
    s1 = summarize_dependence(dep, n)
    s1["tokens_planned"] = plan.dep_tokens
    s1["budget_s"] = plan.dep_budget_s
    s1["stopped_by_budget"] = len(dep.k) < plan.dep_tokens
    return dep, s1


def summarize_dependence(dep: Dependence, n: int) -> dict[str, Any]:
    far = dep.damage[n]
    tokens_beyond = dep.k * dep.cfg.chunk
    agreement = {}
    for m in sorted(dep.damage):
        inside = dep.reach <= m
        if m < dep.context and inside.any():
            agreement[str(m)] = {"tokens": int(inside.sum()), "median_damage": float(np.median(dep.damage[m][inside]))}
    p90 = float(np.quantile(tokens_beyond, 0.9))
    needing = tokens_beyond[far > DAMAGE]
    needing_chunks = dep.k[far > DAMAGE]
    return {
        "tokens": int(len(far)), "context": dep.context, "chunk": dep.cfg.chunk, "local": dep.cfg.local,
        "far_gain": float(far.mean()), "far_gain_ci": bootstrap_ci(far),
        "share_needing_beyond_n": float((far > DAMAGE).mean()), "share_needing_beyond_n_ci": bootstrap_ci(far > DAMAGE),
        "share_reach_beyond_n": float((dep.reach > n).mean()), "share_reach_beyond_n_ci": bootstrap_ci(dep.reach > n),
        "dense_tokens_p90": p90,
        "dense_tokens_p90_ci": bootstrap_ci(tokens_beyond, stat=lambda v: np.quantile(v, 0.9)),
        "k_median_chunks": float(np.median(dep.k)),
        # the kind of dependence among the predictions that need context beyond N (0 when none does)
        "needing_tokens_median": float(np.median(needing)) if len(needing) else 0.0,
        "needing_chunks_median": float(np.median(needing_chunks)) if len(needing) else 0.0,
        "needing_chunks_median_ci": bootstrap_ci(needing_chunks, stat=np.median) if len(needing) else (0.0, 0.0),
        "median_damage_at_reach": float(np.median(dep.damage_at_reach)),
        "median_damage_inside": agreement,
        # None where either side is constant (no rank correlation is defined)
        "spearman_reach_damage": {str(m): None if math.isnan(r) else r
                                  for m in (8, n) if m in dep.damage for r in [spearman(dep.reach, dep.damage[m])]},
        "mean_damage_by_width": {str(m): float(v.mean()) for m, v in sorted(dep.damage.items())},
        "forward_tokens": dep.forward_tokens,
    }


def _train_all(streams: D.TokenStreams, vocab: int, n: int, plan: Plan, folder: Folder, seed: int,
               progress: bool) -> dict[str, tuple[Any, dict[str, float]]]:
    out = {}
    stats = folder.load("train_stats.json") or {}
    for spec in schemes(n):
        spec.steps, spec.batch_size = plan.steps, plan.batch
        model, st = train_small(spec, streams.train, vocab, n, seed, progress, folder.out / "models" / f"{spec.label}.safetensors")
        if st:
            stats[spec.label] = st
            folder.save("train_stats.json", stats)
        out[spec.label] = (model, stats.get(spec.label, {}))
    # the reference sees every distance up to 8N: trained on 8N windows, with as many tokens per step
    ref = SmallLM(position="rope", label="reference", steps=plan.steps, batch_size=max(2, plan.batch // 8))
    model, st = train_small(ref, streams.train, vocab, 8 * n, seed, progress, folder.out / "models" / "reference.safetensors")
    if st:
        stats["reference"] = st
        folder.save("train_stats.json", stats)
    out["reference"] = (model, stats.get("reference", {}))
    return out


def step2(models: dict[str, tuple[Any, dict[str, float]]], streams: D.TokenStreams, n: int, plan: Plan,
          folder: Folder, seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Loss by position to 8N of every model, and of the same tokens read with their last N only."""

    windows = _samples(streams.validation, plan.eval_windows, 8 * n + 1, seed + 1)
    cached = folder.load("step2_losses.json") or {}
    losses: dict[str, np.ndarray] = {}
    near: dict[str, np.ndarray] = {}
    for label, (model, _) in models.items():
        if label not in cached:
            cached[label] = {"long": lengen_lm(model).window_losses(windows).numpy().tolist(),
                             "near": near_context_losses(model, windows, n).numpy().tolist()}
            folder.save("step2_losses.json", cached)
        losses[label] = np.asarray(cached[label]["long"])
        near[label] = np.asarray(cached[label]["near"])
    edges = edges_for(n, 8 * n + 1)
    ref = losses["reference"]
    table: dict[str, Any] = {}
    for label, lo in losses.items():
        rows = ranges_table(lo, edges, seed, near[label])
        gap = range_means(lo, n, 8 * n + 1) - range_means(ref, n, 8 * n + 1)
        table[label] = {"ranges": rows, "rise": rows[-1]["rise"], "rise_ci": rows[-1]["rise_ci"],
                        "gap_to_reference": float(gap.mean()), "gap_ci": bootstrap_ci(gap, seed=seed),
                        "train": models[label][1]}
    return table, losses, near


def step3(model: Any, streams: D.TokenStreams, n: int, plan: Plan, folder: Folder, seed: int,
          progress: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The user's model to 2N as is and with each RoPE scaling; the rise at [N, 2N) is against the
    unchanged model reading each token's last N tokens, at every ``stride``-th position (cost)."""

    windows = _samples(streams.validation, plan.existing_windows, 2 * n + 1, seed + 2)
    cached = {k: np.asarray(v) for k, v in (folder.load("step3_losses.json") or {}).items()}
    losses = variant_losses(model, windows, n, progress, cached,
                            save=lambda d: folder.save("step3_losses.json", {k: v.tolist() for k, v in d.items()}))
    stride = max(1, n // plan.existing_points)
    positions = np.arange(n, 2 * n + 1, stride)
    near = folder.load("step3_near.json")
    if near is None:
        lm = hf_lm(model, "", n)
        rows = torch.stack([windows[:, p - n: p] for p in positions], 1).reshape(-1, n)
        targets = torch.stack([windows[:, p] for p in positions], 1).reshape(-1)
        ids = torch.arange(n).expand(rows.shape[0], n)
        near = (-target_logprob(lm, rows, ids, targets)).view(len(windows), len(positions)).numpy().tolist()
        folder.save("step3_near.json", near)
    near_arr = np.asarray(near)
    table = {}
    for variant, lo in losses.items():
        rows_t = ranges_table(lo, [max(1, n // 2), n, 2 * n + 1], seed)
        rise = (lo[:, positions - 1] - near_arr).mean(axis=1)
        table[variant] = {"ranges": rows_t, "rise": float(rise.mean()), "rise_ci": bootstrap_ci(rise, seed=seed),
                          "rise_positions": f"{n}..{2 * n} every {stride}"}
    return table, losses


def costs(models: dict[str, tuple[Any, dict[str, float]]], n: int, hf_params: int | None) -> dict[str, str]:
    """What each option costs, from the measured training times of the small models and FLOP ratios."""
    out = {}
    for label, (_, st) in models.items():
        if st:
            out[label] = (f"{st['train_s']:.0f} s for {st['tokens'] / 1e6:.2f}M tokens at context "
                          f"{8 * n if label == 'reference' else n} (small model, this machine)")
    short, long = models["rope"][0], models["reference"][0]
    ratio = long.flops_per_token(8 * n) / short.flops_per_token(n)
    out["train at 8N instead of N"] = f"{ratio:.2f}x the FLOPs per token of training at N (small model)"
    out["rope+pose"] = out.get("rope+pose", "") + "; same cost per token as the baseline (only ids change)"
    out["alibi"] = out.get("alibi", "") + "; same cost per token as the baseline"
    if hf_params:
        out["RoPE scaling on your model"] = "no training: inference at the longer length only"
    return out


def validate_settings(s: CheckSettings) -> None:
    """One line for each setting that cannot work, before anything is read or written."""
    if s.context is not None and s.context < 8:
        raise LengenError(f"--context must be at least 8, got {s.context}")
    if s.max_tokens is not None and s.max_tokens < 1:
        raise LengenError(f"--max-tokens must be at least 1, got {s.max_tokens}")
    if s.seed < 0:
        raise LengenError(f"--seed must be >= 0, got {s.seed}")
    if s.data and s.synthetic:
        raise LengenError(f"give DATA or --synthetic {s.synthetic}, not both (DATA is {s.data})")


def run_check(s: CheckSettings, out: Path, progress: bool = True, plan: Plan | None = None) -> dict[str, Any]:
    """All steps; returns the summary (also written to OUT/summary.json with OUT/report.html). ``plan``
    overrides the sizes of --quick / the default (tests use tiny ones; it is part of the cache key)."""
    t0 = time.perf_counter()
    plan = plan or PLANS["quick" if s.quick else "default"]
    validate_settings(s)
    # wall and CPU seconds of each stage in this run (a resumed stage costs ~0). CPU seconds too because
    # the machine is shared: under load, wall time says more about the neighbours than about the check
    stages: dict[str, float] = {}
    cpu: dict[str, float] = {}
    mark, cpu_mark = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:
        nonlocal mark, cpu_mark
        now, cpu_now = time.perf_counter(), time.process_time()
        stages[name], cpu[name] = round(now - mark, 2), round(cpu_now - cpu_mark, 2)
        mark, cpu_mark = now, cpu_now

    docs = _documents(s, s.context or 64)  # cheap input checks before any model is loaded
    lap("read")
    hf = tokenizer = None
    declared = None
    description = None
    if s.model:
        hf, tokenizer, declared, description = load_hf(s.model)
        lap("load model")
    n = s.context or declared or 64
    folder = Folder(out, {**s.identity(), "context_used": n, "plan": asdict(plan)})
    vocab_model = int(hf.config.vocab_size) if hf is not None else 0
    streams = _streams(docs, s, tokenizer, vocab_model)
    _need(streams, n, plan)
    lap("tokenize")
    small, kept = D.compact(streams, SMALL_VOCAB) if not docs.is_ids or streams.vocab_size > SMALL_VOCAB * 2 \
        else (streams, 1.0)
    torch.manual_seed(s.seed)
    models = _train_all(small, small.vocab_size, n, plan, folder, s.seed, progress)
    lap("train small models")
    if hf is not None:
        lm = hf_lm(hf, description or "model", declared)
        # one donor with a large model: each donor costs a full-context forward per sufficiency test
        dep, s1 = step1(lm, streams, n, plan, folder, s.seed, progress, donors=1)
        s1["model"] = description
    else:
        dep, s1 = step1(lengen_lm(models["reference"][0], context=8 * n), small, n, plan, folder, s.seed, progress)
        s1["model"] = "lengen reference (RoPE, trained on this data at 8N)"
    lap("step 1")
    s2, losses2, near2 = step2(models, small, n, plan, folder, s.seed)
    lap("step 2")
    s3, losses3 = (step3(hf, streams, n, plan, folder, s.seed, progress) if hf is not None else (None, {}))
    lap("step 3")
    steps2 = {k: v for k, v in s2.items() if k != "reference"}
    verdict = decide(n, s1, steps2, s3)
    summary = {
        "verdict": verdict.to_dict(), "context": n, "declared_context": declared,
        "data": {"source": docs.source, "kind": "token ids" if docs.is_ids else "text",
                 "tokenizer": streams.tokenizer, "train_tokens": int(len(streams.train)),
                 "validation_tokens": int(len(streams.validation)),
                 "small_model_vocab": small.vocab_size, "small_model_vocab_coverage": kept},
        "step1": s1, "step2": s2, "step3": s3, "costs": costs(models, n, vocab_model or None),
        "settings": s.identity(), "plan": asdict(plan), "wall_s": time.perf_counter() - t0,
        "stage_s": stages, "stage_cpu_s": cpu, "cpu_s": time.process_time(),
    }

    write_report(folder.out, summary, dep, losses2, near2, losses3)
    folder.save("summary.json", summary)
    return summary
