"""Causal attention forward + backward: PyTorch's SDPA against attention written out in matmuls.

lengen's model calls ``F.scaled_dot_product_attention`` (causal flag, or a float mask for bias
schemes). This script checks that no other way to compute the same attention is faster on this
machine: SDPA with ``is_causal``, SDPA with an explicit float mask (what bias schemes use), and
the written-out version (scores, masked softmax, weighted sum) eager and under ``torch.compile``.
Shapes default to the large size of ``train_throughput.py`` (batch 32, 4 heads, sequence 256,
head dim 64). Interleaved repetitions, best CPU time of each (1 thread), ratios to SDPA causal.

    python benchmarks/attention_kernels.py            # ~1 min
    python benchmarks/attention_kernels.py --quick    # tiny shapes, no compile (smoke test)
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import emit, machine, seconds, timed

Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def variants(t: int, head_dim: int, compile_: bool) -> dict[str, Attention]:
    mask = torch.full((t, t), float("-inf")).triu(1)
    scale = head_dim**-0.5

    def sdpa_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def sdpa_mask(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def written_out(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.softmax(q @ k.transpose(-1, -2) * scale + mask, dim=-1) @ v

    out: dict[str, Attention] = {"sdpa_causal": sdpa_causal, "sdpa_float_mask": sdpa_mask,
                                 "written_out": written_out}
    if compile_:
        out["written_out_compiled"] = torch.compile(written_out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, no torch.compile (smoke test)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    b, h, t, d = (2, 2, 16, 8) if args.quick else (32, 4, 256, 64)
    reps = 2 if args.quick else args.reps
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, t, d, generator=gen, requires_grad=True) for _ in range(3))
    grad = torch.randn(b, h, t, d, generator=gen)
    fns = variants(t, d, compile_=not args.quick)
    reference = fns["sdpa_causal"](q, k, v)
    best: dict[str, float] = {}
    max_diff: dict[str, float] = {}
    for name, fn in fns.items():  # warm up (and compile); check they compute the same attention
        max_diff[name] = float((fn(q, k, v) - reference).abs().max())
        fn(q, k, v).backward(grad)
    for rep in range(reps):
        for name, fn in (fns.items() if rep % 2 == 0 else reversed(fns.items())):
            q.grad = k.grad = v.grad = None
            cpu = seconds(timed(lambda fn=fn: fn(q, k, v).backward(grad)), threads=1)
            best[name] = min(best.get(name, float("inf")), cpu)
    base = best["sdpa_causal"]
    rows = [{"variant": n, "ms": round(1000 * best[n], 2), "ratio_to_sdpa_causal": round(best[n] / base, 3),
             "max_abs_diff": max_diff[n]} for n in fns]
    print(f"causal attention forward + backward, batch {b}, {h} heads, sequence {t}, head dim {d}, 1 thread "
          f"(best of {reps}, CPU ms)")
    for r in rows:
        print(f"  {r['variant']:22s} {r['ms']:9.2f} ms  {r['ratio_to_sdpa_causal']:5.2f}x SDPA causal's time  "
              f"(max |diff| {r['max_abs_diff']:.1e})")
    emit({"benchmark": "attention_kernels", "quick": args.quick, "shape": [b, h, t, d], "variants": rows,
          "machine": machine()})


if __name__ == "__main__":
    main()
