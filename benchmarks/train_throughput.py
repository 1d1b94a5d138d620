"""Training tokens/s of lengen's model against Hugging Face transformers' LlamaForCausalLM, and MFU.

Both models get the same Llama-like shape (RMSNorm, SwiGLU with the same hidden width, RoPE, same
width, depth, heads and vocabulary, no tied embeddings), the same loop (full next-token loss on every
position, AdamW, gradient clipping), the same batches and the same threads. Repetitions of the two
are interleaved (ABBA order) so that drift and other processes' load hit both alike; the report is
the median of the per-repetition ratios. Model FLOPs utilization (MFU) is the achieved training
FLOP/s (3x the forward matmul FLOPs) over the best fp32 matmul FLOP/s measured in the same run on
the same number of threads.

    python benchmarks/train_throughput.py                 # both sizes, 1 thread (~2 min)
    python benchmarks/train_throughput.py --compile       # also lengen under torch.compile
    python benchmarks/train_throughput.py --quick         # tiny shapes, seconds (smoke test)
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from common import emit, machine, matmul_flops, median, seconds, timed
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lengen.model import ModelConfig, Transformer


@dataclass
class Size:
    name: str
    d_model: int
    n_layers: int
    n_heads: int
    seq: int
    batch: int
    steps: int  # optimizer steps per timed repetition


SIZES = [Size("large", 256, 4, 4, 256, 32, 2), Size("tiny", 64, 2, 4, 64, 32, 15)]
QUICK = [Size("quick", 32, 1, 2, 16, 2, 2)]
# keywords LlamaConfig takes through **kwargs (its type stubs do not list them)
LLAMA_EXTRA: dict[str, Any] = {"rope_theta": 10000.0, "attn_implementation": "sdpa"}


def lengen_model(size: Size, vocab: int) -> Transformer:
    cfg = ModelConfig(vocab_size=vocab, d_model=size.d_model, n_layers=size.n_layers, n_heads=size.n_heads,
                      norm="rmsnorm", mlp="swiglu", position="rope")
    return Transformer(cfg)


def llama_model(size: Size, vocab: int, d_ff: int) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=size.d_model, intermediate_size=d_ff,
                      num_hidden_layers=size.n_layers, num_attention_heads=size.n_heads,
                      num_key_value_heads=size.n_heads, max_position_embeddings=size.seq,
                      rms_norm_eps=1e-6, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                      attention_dropout=0.0, **LLAMA_EXTRA)
    return LlamaForCausalLM(cfg)


def llama_flops_per_token(model: nn.Module, seq: int) -> int:
    """The same count as Transformer.flops_per_token, from the Llama configuration."""
    c: Any = model.config
    d, ff, kv = c.hidden_size, c.intermediate_size, c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * ff + seq * d
    return 2 * (c.num_hidden_layers * per_layer + d * c.vocab_size)


def counted_linear_flops(forward: Callable[[], torch.Tensor], tokens: int) -> float:
    """Matmul FLOPs per token that torch's FlopCounterMode sees (on CPU it does not see SDPA)."""
    with FlopCounterMode(display=False) as counter:
        forward()
    return counter.get_total_flops() / tokens


class Contestant:
    def __init__(self, name: str, model: nn.Module, logits: Callable[[torch.Tensor], torch.Tensor],
                 fwd_flops: int) -> None:
        self.name, self.model, self.logits, self.fwd_flops = name, model, logits, fwd_flops
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.01,
                                           foreach=True)  # as lengen.train does
        self.tokens_per_s: list[float] = []  # per CPU second with one thread, else per wall second
        self.tokens_per_wall_s: list[float] = []

    def step(self, tokens: torch.Tensor) -> None:
        logits = self.logits(tokens)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()

    def run(self, batches: list[torch.Tensor], threads: int) -> None:
        def all_steps() -> None:
            for tokens in batches:
                self.step(tokens)
        measured = timed(all_steps)
        tokens = sum(t.numel() for t in batches)
        self.tokens_per_s.append(tokens / seconds(measured, threads))
        self.tokens_per_wall_s.append(tokens / measured[0])


def bench_size(size: Size, vocab: int, reps: int, threads: int, peak: float, compile_too: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    ours = lengen_model(size, vocab)
    d_ff = ours.cfg.ff_width
    theirs = llama_model(size, vocab, d_ff)
    ids = torch.arange(size.seq).expand(size.batch, size.seq)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, vocab, (size.batch, size.seq), generator=gen) for _ in range(size.steps)]
    contestants = [
        Contestant("lengen", ours, lambda t: ours(t, ids), ours.flops_per_token(size.seq)),
        Contestant("transformers", theirs, lambda t: theirs(input_ids=t, use_cache=False).logits,
                   llama_flops_per_token(theirs, size.seq)),
    ]
    if compile_too:
        twin = lengen_model(size, vocab)
        compiled: Callable[..., torch.Tensor] = torch.compile(twin)
        contestants.append(Contestant("lengen+compile", twin, lambda t: compiled(t, ids), twin.flops_per_token(size.seq)))
    tokens = size.batch * size.seq
    counted = {c.name: counted_linear_flops(partial(c.logits, batches[0]), tokens) for c in contestants}
    for c in contestants:  # warm-up (and compilation) outside the timings
        for tokens_ in batches[:1]:
            c.step(tokens_)
    for rep in range(reps):
        order = contestants if rep % 2 == 0 else contestants[::-1]
        for c in order:
            c.run(batches, threads)
    ratios = [a / b for a, b in zip(contestants[0].tokens_per_s, contestants[1].tokens_per_s, strict=True)]
    out: dict[str, Any] = {"size": size.name, "d_model": size.d_model, "n_layers": size.n_layers,
                           "n_heads": size.n_heads, "seq": size.seq, "batch": size.batch, "vocab": vocab,
                           "d_ff": d_ff, "threads": threads, "reps": reps,
                           "ratio_lengen_over_transformers": round(median(ratios), 3),
                           "ratios": [round(r, 3) for r in ratios]}
    for c in contestants:
        tps = median(c.tokens_per_s)
        out[c.name] = {"tokens_per_s": round(tps), "tokens_per_wall_s": round(median(c.tokens_per_wall_s)),
                       "fwd_flops_per_token": c.fwd_flops,
                       "counted_linear_flops_per_token": round(counted[c.name]),
                       "mfu": round(3 * c.fwd_flops * tps / peak, 3)}
    if compile_too:
        out["ratio_compiled_over_eager"] = round(median(
            [a / b for a, b in zip(contestants[2].tokens_per_s, contestants[0].tokens_per_s, strict=True)]), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repetition (smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see anchors.md)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions per size")
    parser.add_argument("--vocab", type=int, default=32, help="vocabulary size of both models")
    parser.add_argument("--compile", action="store_true", help="also time lengen under torch.compile")
    parser.add_argument("--sizes", nargs="*", help="only these sizes (large, tiny)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    sizes = QUICK if args.quick else [s for s in SIZES if not args.sizes or s.name in args.sizes]
    reps = 1 if args.quick else args.reps
    torch.set_num_threads(args.threads)
    peak_before = matmul_flops(args.threads, 256 if args.quick else 1024)
    results = []
    for size in sizes:
        torch.set_num_threads(args.threads)
        results.append(bench_size(size, args.vocab, reps, args.threads, peak_before, args.compile))
    peak = max(peak_before, matmul_flops(args.threads, 256 if args.quick else 1024))
    for r in results:  # MFU against the best matmul rate of the run
        for name in ("lengen", "transformers", "lengen+compile"):
            if name in r:
                r[name]["mfu"] = round(3 * r[name]["fwd_flops_per_token"] * r[name]["tokens_per_s"] / peak, 3)
    basis = "CPU second" if args.threads == 1 else "wall second"
    print(f"fp32 matmul peak on {args.threads} thread(s): {peak / 1e9:.1f} GFLOP/s; rates are per {basis}")
    for r in results:
        print(f"\n[{r['size']}] d_model {r['d_model']}, {r['n_layers']} layers, {r['n_heads']} heads, d_ff {r['d_ff']}, "
              f"seq {r['seq']}, batch {r['batch']}, vocab {r['vocab']}, {r['threads']} thread(s)")
        for name in ("lengen", "transformers", "lengen+compile"):
            if name in r:
                c = r[name]
                print(f"  {name:15s} {c['tokens_per_s']:>9,d} tok/s ({c['tokens_per_wall_s']:,d} per wall s)  fwd FLOPs/token {c['fwd_flops_per_token']:,} "
                      f"(linear layers counted: {c['counted_linear_flops_per_token']:,})  MFU {c['mfu']:.1%}")
        print(f"  lengen / transformers tokens/s: {r['ratio_lengen_over_transformers']:.2f}x (median of {r['ratios']})")
        if "ratio_compiled_over_eager" in r:
            print(f"  lengen compiled / eager: {r['ratio_compiled_over_eager']:.2f}x")
    emit({"benchmark": "train_throughput", "quick": args.quick, "matmul_peak_flops": round(peak),
          "sizes": results, "machine": machine()})


if __name__ == "__main__":
    main()
