"""Training tokens/s of lengen's model against Hugging Face transformers' LlamaForCausalLM, and MFU.

lengen runs twice: with separate q/k/v products (``fused_projections: false``, row "lengen") and with
one fused q/k/v product (the default, row "lengen-fused"); SwiGLU's gate and up are two products in
both (lengen has no fused gate/up product). Both models get the same
Llama-like shape (RMSNorm, SwiGLU with the same hidden width, RoPE, same width, depth, heads and
vocabulary, no tied embeddings), the same loop (full next-token loss on every
position, AdamW, gradient clipping), the same batches and the same threads. Repetitions of the two
are interleaved (ABBA order) so that drift and other processes' load hit both alike; the report is
the median of the per-repetition ratios. Model FLOPs utilization (MFU) is the achieved training
FLOP/s (3x the forward matmul FLOPs) over the best fp32 matmul FLOP/s measured in the same run on
the same number of threads.

    python benchmarks/train_throughput.py                 # both sizes, 1 thread (~2 min)
    python benchmarks/train_throughput.py --compile       # also both models under torch.compile
    python benchmarks/train_throughput.py --breakdown     # where each model's CPU time goes
    python benchmarks/train_throughput.py --quick         # tiny shapes, seconds (smoke test)
    PYTHONPATH=src python3 benchmarks/train_throughput.py --device cuda --compile   # on a GPU machine

On CUDA both models run under bf16 autocast (as lengen's trainer does there), rates are per wall
second with the device synchronized, and MFU is against the bf16 matmul rate measured in the run.

``--breakdown`` profiles one more repetition of each model and splits its CPU time into matmuls,
the SDPA attention kernels and everything else. Both models run the same matmuls and the same
attention kernel, so transformers' step time over lengen's matmul + attention time bounds what any
rewrite of lengen's other work (norms, RoPE, SiLU, copies, the optimizer) could gain over it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
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


def lengen_model(size: Size, vocab: int, fused: bool = False) -> Transformer:
    """lengen's Llama-like model; separate q/k/v products unless ``fused``."""
    cfg = ModelConfig(vocab_size=vocab, d_model=size.d_model, n_layers=size.n_layers, n_heads=size.n_heads,
                      norm="rmsnorm", mlp="swiglu", position="rope", fused_projections=fused)
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


@dataclass
class Setting:
    """Where the contestants run: CPU threads, or a CUDA device under bf16 autocast."""

    device: torch.device
    threads: int

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def seconds(self, measured: tuple[float, float]) -> float:
        return seconds(measured, self.threads, self.device)

    def peak(self, quick: bool) -> float:
        if self.device.type == "cuda":  # bf16 tensor-core products need large shapes to reach their rate
            return matmul_flops(self.threads, 1024 if quick else 8192, device=self.device, dtype=torch.bfloat16)
        return matmul_flops(self.threads, 256 if quick else 1024)


class Contestant:
    def __init__(self, name: str, model: nn.Module, logits: Callable[[torch.Tensor], torch.Tensor],
                 fwd_flops: int, setting: Setting,
                 eager_logits: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.name, self.model, self.logits, self.fwd_flops = name, model, logits, fwd_flops
        self.setting = setting
        # FLOPs are counted on the eager model: a compiled callable first called under FlopCounterMode
        # (a dispatch mode) is not compiled, and it then stays eager for every later call
        self.eager_logits = eager_logits or logits
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.01,
                                           foreach=True)  # as lengen.train does
        self.tokens_per_s: list[float] = []  # per CPU second with one thread, else per wall second
        self.tokens_per_wall_s: list[float] = []
        self.warmup_s = 0.0  # wall seconds of the first step: compilation, for compiled models

    def step(self, tokens: torch.Tensor) -> None:
        with self.setting.autocast():
            logits = self.logits(tokens)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()

    def all_steps(self, batches: list[torch.Tensor]) -> None:
        for tokens in batches:
            self.step(tokens)

    def run(self, batches: list[torch.Tensor]) -> None:
        measured = timed(partial(self.all_steps, batches), self.setting.device)
        tokens = sum(t.numel() for t in batches)
        self.tokens_per_s.append(tokens / self.setting.seconds(measured))
        self.tokens_per_wall_s.append(tokens / measured[0])


# self-CPU time of these profiler events is "matmul" or "attention"; the rest is elementwise work,
# copies, compiled (fused) kernels and the optimizer
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
ATTENTION_PREFIX = "aten::_scaled_dot_product"


def breakdown(c: Contestant, batches: list[torch.Tensor]) -> dict[str, float]:
    """CPU seconds per step of one profiled repetition, split into matmul, attention and other."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        c.all_steps(batches)
    parts = {"matmul": 0.0, "attention": 0.0, "other": 0.0}
    for event in prof.key_averages():
        seconds_ = event.self_cpu_time_total / 1e6 / len(batches)
        part = ("matmul" if event.key in MATMUL_OPS
                else "attention" if event.key.startswith(ATTENTION_PREFIX) else "other")
        parts[part] += seconds_
    return {k: round(v, 4) for k, v in parts.items()} | {"total": round(sum(parts.values()), 4)}


def bench_size(size: Size, vocab: int, reps: int, setting: Setting, peak: float, compile_too: bool,
               profile_too: bool) -> dict[str, Any]:
    torch._dynamo.reset()  # each size compiles afresh (with static shapes), not as a variant of the last
    torch.manual_seed(0)
    device = setting.device
    ours = lengen_model(size, vocab).to(device)
    d_ff = ours.cfg.ff_width
    theirs = llama_model(size, vocab, d_ff).to(device)
    ids = torch.arange(size.seq, device=device).expand(size.batch, size.seq)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, vocab, (size.batch, size.seq), generator=gen).to(device) for _ in range(size.steps)]

    def lengen_logits(model: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda t: model(t, ids)

    def llama_logits(model: Callable[..., Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda t: model(input_ids=t, use_cache=False).logits

    torch.manual_seed(0)  # the same initial values as ``ours`` (the fused matrices draw them in the same order)
    fused = lengen_model(size, vocab, fused=True).to(device)
    contestants = [
        Contestant("lengen", ours, lengen_logits(ours), ours.flops_per_token(size.seq), setting),
        Contestant("transformers", theirs, llama_logits(theirs), llama_flops_per_token(theirs, size.seq), setting),
        Contestant("lengen-fused", fused, lengen_logits(fused), fused.flops_per_token(size.seq), setting),
    ]
    if compile_too:  # twins with the same initial weights, so that every contestant trains alike
        for name, eager, make_logits in (("lengen", ours, lengen_logits), ("transformers", theirs, llama_logits)):
            twin = copy.deepcopy(eager)
            contestants.append(Contestant(f"{name}+compile", twin, make_logits(torch.compile(twin)),
                                          contestants[0 if name == "lengen" else 1].fwd_flops, setting,
                                          eager_logits=make_logits(twin)))
    tokens = size.batch * size.seq
    counted = {c.name: counted_linear_flops(partial(c.eager_logits, batches[0]), tokens) for c in contestants}
    for c in contestants:  # warm-up (and compilation) outside the timings
        c.warmup_s = timed(partial(c.step, batches[0]), device)[0]
    for rep in range(reps):
        order = contestants if rep % 2 == 0 else contestants[::-1]
        for c in order:
            c.run(batches)
    rate = {c.name: median(c.tokens_per_s) for c in contestants}
    by_name = {c.name: c for c in contestants}

    def per_rep(a: str, b: str) -> list[float]:
        """Tokens/s of ``a`` over ``b``, per interleaved repetition."""
        return [p / q for p, q in zip(by_name[a].tokens_per_s, by_name[b].tokens_per_s, strict=True)]

    def ratio(a: str, b: str) -> float:
        return round(median(per_rep(a, b)), 3)

    out: dict[str, Any] = {"size": size.name, "d_model": size.d_model, "n_layers": size.n_layers,
                           "n_heads": size.n_heads, "seq": size.seq, "batch": size.batch, "vocab": vocab,
                           "d_ff": d_ff, "threads": setting.threads, "device": str(device), "reps": reps,
                           "ratio_lengen_over_transformers": ratio("lengen", "transformers"),
                           "ratios": [round(r, 3) for r in per_rep("lengen", "transformers")],
                           "ratio_fused_lengen_over_transformers": ratio("lengen-fused", "transformers"),
                           "ratio_lengen_over_fused_lengen": ratio("lengen", "lengen-fused")}
    for c in contestants:
        out[c.name] = {"tokens_per_s": round(rate[c.name]), "tokens_per_wall_s": round(median(c.tokens_per_wall_s)),
                       "fwd_flops_per_token": c.fwd_flops,
                       "counted_linear_flops_per_token": round(counted[c.name]),
                       "mfu": round(3 * c.fwd_flops * rate[c.name] / peak, 3),
                       "first_step_wall_s": round(c.warmup_s, 2)}
        if profile_too:
            out[c.name]["breakdown_s_per_step"] = breakdown(c, batches)
    if compile_too:
        out["ratio_compiled_over_eager"] = ratio("lengen+compile", "lengen")
        out["ratio_compiled_lengen_over_compiled_transformers"] = ratio("lengen+compile", "transformers+compile")
        out["ratio_compiled_lengen_over_transformers"] = ratio("lengen+compile", "transformers")
    if profile_too:  # the most any change outside matmuls and attention could give lengen over transformers
        kernels = out["lengen"]["breakdown_s_per_step"]
        out["speedup_bound_over_transformers"] = round(
            out["transformers"]["breakdown_s_per_step"]["total"] / (kernels["matmul"] + kernels["attention"]), 3)
    return out


CONTESTANTS = ("lengen", "transformers", "lengen-fused", "lengen+compile", "transformers+compile")


def report(r: dict[str, Any]) -> None:
    print(f"\n[{r['size']}] d_model {r['d_model']}, {r['n_layers']} layers, {r['n_heads']} heads, d_ff {r['d_ff']}, "
          f"seq {r['seq']}, batch {r['batch']}, vocab {r['vocab']}, "
          + (r["device"] if r["device"] != "cpu" else f"{r['threads']} thread(s)"))
    for name in (n for n in CONTESTANTS if n in r):
        c = r[name]
        print(f"  {name:21s} {c['tokens_per_s']:>9,d} tok/s ({c['tokens_per_wall_s']:,d} per wall s)  "
              f"fwd FLOPs/token {c['fwd_flops_per_token']:,} (linear layers counted: "
              f"{c['counted_linear_flops_per_token']:,})  MFU {c['mfu']:.1%}  first step {c['first_step_wall_s']:.1f} s")
        if "breakdown_s_per_step" in c:
            b = c["breakdown_s_per_step"]
            print(f"  {'':21s} CPU s per step (profiled): matmul {b['matmul']:.3f}, attention {b['attention']:.3f}, "
                  f"other {b['other']:.3f}, total {b['total']:.3f}")
    print(f"  lengen / transformers tokens/s: {r['ratio_lengen_over_transformers']:.2f}x (median of {r['ratios']})")
    print(f"  lengen-fused (the default fused_projections: one q/k/v product) / transformers: "
          f"{r['ratio_fused_lengen_over_transformers']:.2f}x; lengen / lengen-fused: {r['ratio_lengen_over_fused_lengen']:.2f}x")
    if "ratio_compiled_over_eager" in r:
        print(f"  lengen compiled / eager: {r['ratio_compiled_over_eager']:.2f}x; lengen compiled / transformers "
              f"compiled: {r['ratio_compiled_lengen_over_compiled_transformers']:.2f}x; lengen compiled / "
              f"transformers eager: {r['ratio_compiled_lengen_over_transformers']:.2f}x")
    if "speedup_bound_over_transformers" in r:
        print(f"  transformers' step / lengen's matmul + attention time: {r['speedup_bound_over_transformers']:.2f}x "
              "(the most lengen could gain over transformers with every other op free)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repetition (smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see anchors.md)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions per size")
    parser.add_argument("--vocab", type=int, default=32, help="vocabulary size of both models")
    parser.add_argument("--compile", action="store_true", help="also time both models under torch.compile")
    parser.add_argument("--breakdown", action="store_true",
                        help="profile one more repetition per model: matmul / attention / other CPU time")
    parser.add_argument("--sizes", nargs="*", help="only these sizes (large, tiny)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cpu (default) or cuda (bf16 autocast, wall-clock rates)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    if args.device == "cuda" and args.breakdown:
        parser.error("--breakdown splits CPU time; on CUDA use a GPU profiler (nsys, ncu) instead")
    setting = Setting(torch.device(args.device), args.threads)
    warnings.filterwarnings("ignore")
    sizes = QUICK if args.quick else [s for s in SIZES if not args.sizes or s.name in args.sizes]
    reps = 1 if args.quick else args.reps
    torch.set_num_threads(args.threads)
    peak_before = setting.peak(args.quick)
    results = []
    for size in sizes:
        torch.set_num_threads(args.threads)
        results.append(bench_size(size, args.vocab, reps, setting, peak_before, args.compile, args.breakdown))
    peak = max(peak_before, setting.peak(args.quick))
    for r in results:  # MFU against the best matmul rate of the run
        for name in (n for n in CONTESTANTS if n in r):
            r[name]["mfu"] = round(3 * r[name]["fwd_flops_per_token"] * r[name]["tokens_per_s"] / peak, 3)
    if setting.device.type == "cuda":
        print(f"bf16 matmul peak on {torch.cuda.get_device_name()}: {peak / 1e12:.1f} TFLOP/s; "
              "rates are per wall second, both models under bf16 autocast")
    else:
        basis = "CPU second" if args.threads == 1 else "wall second"
        print(f"fp32 matmul peak on {args.threads} thread(s): {peak / 1e9:.1f} GFLOP/s; rates are per {basis}")
    for r in results:
        report(r)
    emit({"benchmark": "train_throughput", "quick": args.quick, "matmul_peak_flops": round(peak),
          "sizes": results, "machine": machine()})


if __name__ == "__main__":
    main()
