"""Greedy generation with the KV cache against recomputing the whole prefix, at 8x the training length.

    python benchmarks/generation_cache.py [--train-len 20] [--factor 8] [--batch 32] [--head classes|pointer]

Times both on the same prompts with the same (untrained; the cost does not depend on the weights)
PPC model, checks that they emit the same tokens and ids, and prints the measured ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lengen.evaluate import generation_inputs
from lengen.generate import generate
from lengen.model import ModelConfig, Transformer
from lengen.tasks import make_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-len", type=int, default=20)
    parser.add_argument("--factor", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--head", choices=["classes", "pointer"], default="classes",
                        help="PPC head: id classifier on a learned table, or pointer head (the experiment's ppc)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    length = args.train_len * args.factor
    task = make_task("copy")
    torch.manual_seed(0)
    if args.head == "pointer":
        cfg = ModelConfig(vocab_size=task.vocab_size, d_model=64, n_layers=2, n_heads=4, position="t5_bias",
                          position_args={"num_buckets": 8, "max_distance": 8}, position_head=True,
                          position_head_kind="pointer", pointer_keys="embed", pointer_distance="interpolated",
                          pointer_max_distance=16, pointer_max_back=2)
    else:
        cfg = ModelConfig(vocab_size=task.vocab_size, d_model=64, n_layers=2, n_heads=4, position="learned",
                          position_args={"max_position": length + 8}, position_head=True)
    model = Transformer(cfg).eval()
    batch = task.sample(np.random.default_rng(0), args.batch, length)
    prompt, prompt_ids, steps = generation_inputs(batch, batch.coupled_ids)
    timings = {}
    outputs = {}
    for use_cache in (True, False):
        start = time.perf_counter()
        outputs[use_cache] = generate(model, prompt, prompt_ids, steps, predict_ids=True, use_cache=use_cache)
        timings[use_cache] = time.perf_counter() - start
    same = torch.equal(outputs[True].tokens, outputs[False].tokens) and torch.equal(outputs[True].ids,
                                                                                     outputs[False].ids)
    print(f"{args.head} head, length {length} ({args.factor}x {args.train_len}), prompt {prompt.shape[1]} tokens, {steps} generated, "
          f"batch {args.batch}, {args.threads} thread(s)")
    print(f"cached: {timings[True]:.2f} s  recomputed: {timings[False]:.2f} s  "
          f"speed-up: {timings[False] / timings[True]:.1f}x  identical outputs: {same}")


if __name__ == "__main__":
    main()
