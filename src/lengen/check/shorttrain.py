"""Small lengen language models trained on the user's token stream (steps 1 and 2 of `lengen check`).

A plain next-token loop (AdamW, warmup then cosine, every token of a random window scored): the
experiment machinery's early stopping on answer accuracy does not apply to language modelling, and
the check needs nothing else. PoSE (``lengen.positions.pose``) rewrites the ids of each training
window so that ids up to ``pose_target`` are seen while the windows stay ``context`` tokens long.
Weights are saved as safetensors, so a rerun of the same check reloads instead of training again.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from lengen.errors import LengenError
from lengen.model import ModelConfig, Transformer
from lengen.position_ids import PoSE, prepare_position_ids


@dataclass
class SmallLM:
    position: str = "rope"  # rope | alibi (any lengen scheme with relative or no position ids)
    pose_target: int | None = None  # PoSE: ids up to this length are seen in training
    label: str = "rope"
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    steps: int = 600
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 50

    def model_config(self, vocab: int) -> ModelConfig:
        return ModelConfig(vocab_size=vocab, d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
                           position=self.position, norm="rmsnorm")


def random_windows(stream: np.ndarray, rng: np.random.Generator, batch: int, length: int) -> torch.Tensor:
    room = len(stream) - length + 1
    if room < 1:
        raise LengenError(f"the data has {len(stream)} tokens: too few for windows of {length}")
    start = rng.integers(0, room, size=batch)
    return torch.from_numpy(stream[start[:, None] + np.arange(length)[None, :]].astype(np.int64))


def train_small(spec: SmallLM, stream: np.ndarray, vocab: int, context: int, seed: int = 0,
                progress: bool = True, cache: Path | None = None) -> tuple[Transformer, dict[str, float]]:
    """A model trained on windows of ``context`` tokens; reloaded from ``cache`` when it is there."""
    torch.manual_seed(seed)
    model = Transformer(spec.model_config(vocab))
    if cache is not None and cache.is_file():
        model.load_state_dict(load_file(str(cache)))
        model.eval()
        return model, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster than two here (shared/anchors.md)
    try:
        return _train(model, spec, stream, context, seed, progress, cache)
    finally:
        torch.set_num_threads(threads)


def _train(model: Transformer, spec: SmallLM, stream: np.ndarray, context: int, seed: int, progress: bool,
           cache: Path | None) -> tuple[Transformer, dict[str, float]]:
    rng = np.random.default_rng([seed, context])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    ids = torch.arange(context).expand(spec.batch_size, context)
    t0, losses = time.perf_counter(), []
    model.train()
    bar = tqdm(range(spec.steps), desc=f"train {spec.label} @ {context}", unit="step", disable=not progress,
               dynamic_ncols=True, leave=False)
    pose = None if spec.pose_target is None else PoSE(spec.pose_target, 2)
    for step in bar:
        lr = spec.lr * min(1.0, (step + 1) / spec.warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / spec.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        x = random_windows(stream, rng, spec.batch_size, context + 1)
        logits = model(x[:, :-1], prepare_position_ids(model, ids, generator=gen, pose=pose))
        loss = F.cross_entropy(logits.transpose(1, 2), x[:, 1:])
        if not torch.isfinite(loss):
            raise LengenError(f"training {spec.label} diverged (loss {float(loss)})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    model.eval()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        tmp.replace(cache)  # atomic: a half-written file never looks finished
    stats = {"train_loss_last50": float(np.mean(losses[-50:])), "train_s": time.perf_counter() - t0,
             "tokens": float(spec.steps * spec.batch_size * context)}
    return model, stats


def describe(spec: SmallLM) -> dict[str, object]:
    return asdict(spec)
