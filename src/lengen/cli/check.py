"""`lengen check`: will a model trained at context N work on longer inputs of *this* data?"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lengen.check.run import CheckSettings, run_check
from lengen.cli.arguments import check_threads


def _run(args: argparse.Namespace) -> int:
    check_threads(args.threads, 1)
    # one thread: tiny models train faster on one thread than on two here (docs/../anchors: 42k vs 8k tokens/s)
    torch.set_num_threads(args.threads or 1)
    settings = CheckSettings(data=args.data, synthetic=args.synthetic, field=args.field, model=args.model,
                             context=args.context, quick=args.quick, tokenizer=args.tokenizer, seed=args.seed,
                             max_tokens=args.max_tokens)
    summary = run_check(settings, Path(args.out), progress=not args.no_progress)
    v = summary["verdict"]
    print(f"verdict: {v['headline']}")
    print(f"  {v['reason']}")
    for step in v["next_steps"]:
        print(f"  next: {step}")
    s1 = summary["step1"]
    stopped = f", stopped by its {s1['budget_s']:.0f} s budget" if s1.get("stopped_by_budget") else ""
    print(f"  step 1 measured {s1['tokens']} of {s1['tokens_planned']} tokens{stopped}; wall {summary['wall_s']:.0f} s "
          f"(" + ", ".join(f"{k} {v:.0f} s" for k, v in summary["stage_s"].items()) + ")")
    print(f"report: {Path(args.out) / 'report.html'}  summary: {Path(args.out) / 'summary.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="go / no-go for longer inputs on your own data (and model)",
                       description="Will a model trained at context N work on longer inputs of this data? Step 1 "
                                   "measures how much context each prediction needs, step 2 trains small models at "
                                   "N and evaluates them to 8N, step 3 (with --model) runs your model beyond its "
                                   "context with RoPE scalings; then a verdict. Rerunning the same command continues.")
    p.add_argument("data", nargs="?", help="kjv, shakespeare, a .txt/.jsonl/.csv file or a folder of them")
    p.add_argument("--synthetic", choices=["local", "far", "dense"],
                   help="use a synthetic corpus with known dependency structure instead of DATA")
    p.add_argument("--model", help="your model: a Hugging Face folder or a .gguf file (offline)")
    p.add_argument("--context", type=int, help="N, the training context (default: the model's declared context, "
                                               "else 64)")
    p.add_argument("--quick", action="store_true", help="a smaller run (about 5 minutes on 2 CPU cores)")
    p.add_argument("--field", help="the JSONL field or CSV column to read (default text; JSONL also tokens/ids)")
    p.add_argument("--tokenizer", choices=["gpt2", "bytes"], default="gpt2",
                   help="for text without --model (default gpt2)")
    p.add_argument("--max-tokens", type=int, help="read at most this many tokens of the data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default 1: fastest for the small models)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="output folder (reports, cached steps)")
    p.set_defaults(func=_run)
