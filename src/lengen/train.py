"""Training on short sequences: AdamW, warmup + cosine decay, one random length per step.

Determinism: all data comes from a numpy generator seeded by the cell's seed, id augmentations from
a seeded torch generator, initialisation from torch's seeded global RNG. A checkpoint stores all of
them, so ``resume`` continues exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lengen.answers import answer_loss, head_loss_weights
from lengen.checkpoint import (
    find_checkpoint,
    load_best,
    load_optimizer,
    load_weights,
    read_state,
    save_checkpoint,
)
from lengen.config import Cell
from lengen.distributed import data_split
from lengen.errors import LengenError, TrainingDiverged
from lengen.model import Transformer
from lengen.monitor import TargetMonitor
from lengen.position_ids import PoSE, prepare_position_ids


def same_configuration(saved: Any, cell: Cell) -> bool:
    """Whether a checkpoint's saved cell is ``cell`` (options added since it was written count as default)."""
    try:
        return bool(Cell.from_dict(saved).canonical() == cell.canonical())
    except (KeyError, TypeError):
        return False


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise LengenError("train.device is cuda but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_at(step: int, cfg: Any) -> float:
    """Linear warmup to ``lr``, then cosine decay to 10% of it at the end of the step budget."""
    if step < cfg.warmup:
        return float(cfg.lr * (step + 1) / cfg.warmup)
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return float(cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))))


@dataclass
class TrainResult:
    model: Transformer
    steps: int  # optimizer steps taken in total
    train_accuracy: float  # answer accuracy over the last check window (the training mixture)
    stopped_early: bool  # reached target_accuracy before the step budget
    wall_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    selected_step: int | None = None  # the step whose weights were kept (select: best); None: the last
    target_scores: dict[str, float] = field(default_factory=dict)  # held-out target score per setting there


def _rng_state(rng: np.random.Generator, gen: torch.Generator) -> dict[str, Any]:
    return {"numpy": rng.bit_generator.state, "torch_gen": gen.get_state().tolist(),
            "torch_global": torch.get_rng_state().tolist()}


def _restore_rng(state: dict[str, Any], rng: np.random.Generator, gen: torch.Generator) -> None:
    rng.bit_generator.state = state["numpy"]
    gen.set_state(torch.tensor(state["torch_gen"], dtype=torch.uint8))
    torch.set_rng_state(torch.tensor(state["torch_global"], dtype=torch.uint8))


def train(cell: Cell, out_dir: Path | None = None, resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Train the cell's model. With ``out_dir``, checkpoints go to ``out_dir/checkpoint``.

    ``resume`` continues from that checkpoint when one exists. ``stop_after`` ends the run after that
    many steps in total, as an interruption would (tests use it to check resume).
    """
    cfg = cell.train
    cfg.validate()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    task = cell.build_task()
    # a copy: mutating the cell would change its key (the experiment runner looks cells up by key)
    model_cfg = dataclasses.replace(cell.model, vocab_size=task.vocab_size)

    torch.manual_seed(cell.seed)
    model = Transformer(model_cfg)
    rng = np.random.default_rng([cell.seed, 0])
    gen = torch.Generator().manual_seed(cell.seed + 1)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "positions." not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "positions." not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98),
                                  foreach=True)  # CPU default is a loop over tensors; same numbers, 1.7x faster
    step, history, elapsed = 0, [], 0.0
    best: dict[str, torch.Tensor] | None = None
    partial = [0.0, 0.0, 0]  # loss sum, correct count, scored count of the unfinished check window
    ckpt_dir = None if out_dir is None else Path(out_dir) / "checkpoint"
    if resume and ckpt_dir is not None and (found := find_checkpoint(ckpt_dir)) is not None:
        state = read_state(found)
        if not same_configuration(state.get("cell"), cell):
            raise LengenError(f"cannot resume from {found}: it was written by a different configuration")
        load_weights(found, model)
        load_optimizer(found, optimizer, state)
        _restore_rng(state["rng"], rng, gen)
        step, history, elapsed, partial = state["step"], state["history"], state["wall_s"], state["window"]
        best = load_best(found)
        if state.get("finished"):
            if best is not None:
                model.load_state_dict(best)
            model.eval()
            return TrainResult(model, step, state["train_accuracy"], state["stopped_early"], elapsed, history,
                               state.get("selected_step"), state.get("target_scores", {}))
    model.to(device)
    wanted = cfg.stop_on == "target" or cfg.select == "best" or cfg.curve_every
    monitor = TargetMonitor(cell, model, device) if wanted and task.exact_match_protocol else None
    selection = Selection.from_history(history, best)
    split = data_split(cfg.batch_size)  # None unless run under torchrun (lengen.ddp)
    step_loss = answer_loss if split is None else split.wrap(model, answer_loss)
    if cfg.compile:  # dynamic: one compilation covers every training length
        step_loss = torch.compile(step_loss, dynamic=True)
    progress = progress and (split is None or split.rank == 0)
    head_weights = head_loss_weights(model, cfg)
    pose = None if cfg.pose_target_length is None else PoSE(cfg.pose_target_length, cfg.pose_chunks)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    loss_sum = torch.tensor(float(partial[0]), device=device)
    correct_sum = torch.tensor(float(partial[1]), device=device)
    scored = int(partial[2])
    accuracy, stopped = (history[-1]["accuracy"] if history else float("nan")), False
    start = time.perf_counter()

    def checkpoint(finished: bool) -> None:
        if ckpt_dir is None or (split is not None and split.rank != 0):
            return
        save_checkpoint(ckpt_dir, model, optimizer, {
            "cell": cell.to_dict(), "step": step, "rng": _rng_state(rng, gen), "history": history,
            "window": [float(loss_sum), float(correct_sum), scored],
            "wall_s": elapsed + time.perf_counter() - start,
            "finished": finished, "train_accuracy": accuracy, "stopped_early": stopped,
            "selected_step": selection.step, "target_scores": selection.scores,
        }, best=selection.weights)

    model.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, leave=False, dynamic_ncols=True,
               desc=f"{cell.scheme.label} {cell.grid_values} seed {cell.seed}")
    while step < cfg.steps:
        length = int(rng.integers(cfg.min_len, cfg.max_len + 1))
        batch = task.sample(rng, cfg.batch_size, length)
        # ids are rewritten on the CPU, where the seeded generator lives, then moved with the batch
        batch.position_ids = prepare_position_ids(model, batch, cfg.ids, gen, pose)
        if cfg.compile:  # the compiled forward skips this check (it would break the graph)
            model.positions.check_ids(batch.position_ids)
        batch = (batch if split is None else split.shard(batch)).to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        with autocast if autocast is not None else contextlib.nullcontext():
            loss, correct, count = step_loss(model, batch, batch.position_ids, head_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        loss_sum += loss.detach()
        correct_sum += correct
        scored += count
        bar.update(1)
        window_steps = step - (history[-1]["step"] if history else 0)
        if step % cfg.check_every == 0 or step == cfg.steps:
            window = (float(loss_sum), float(correct_sum), scored) if split is None else \
                split.reduce(loss_sum, correct_sum, scored)  # the only host sync, once per check window
            mean_loss = window[0] / window_steps
            accuracy = window[1] / max(1, window[2])
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(f"loss became {mean_loss} by step {step} (lr {lr_at(step - 1, cfg):.2g}); "
                                       f"lower train.lr or raise train.warmup")
            entry: dict[str, Any] = {"step": step, "loss": mean_loss, "accuracy": accuracy, "lr": lr_at(step - 1, cfg)}
            stop_score = accuracy
            if monitor is not None:
                entry["target"] = monitor.target(model)
                stop_score = min(entry["target"].values())
                if cfg.select == "best":
                    selection.offer(step, entry["target"], model)
                if cfg.curve_every and step % cfg.curve_every == 0:
                    entry["curves"] = monitor.curves(model)
            if cfg.stop_on == "mixture" or monitor is None:
                stop_score = accuracy
            history.append(entry)
            bar.set_postfix(loss=f"{mean_loss:.3f}", acc=f"{accuracy:.3f}", target=f"{stop_score:.3f}")
            loss_sum.zero_()
            correct_sum.zero_()
            scored = 0
            if cfg.target_accuracy is not None and stop_score >= cfg.target_accuracy:
                stopped = step < cfg.steps
                if monitor is not None and cfg.curve_every and "curves" not in entry:
                    entry["curves"] = monitor.curves(model)  # where early stopping lands, on the curves
                break
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            checkpoint(False)
        if stop_after is not None and step >= stop_after:
            bar.close()
            checkpoint(False)
            raise KeyboardInterrupt
    bar.close()
    if monitor is not None and cfg.curve_every and history and "curves" not in history[-1]:
        history[-1]["curves"] = monitor.curves(model)
    checkpoint(True)
    if selection.weights is not None:
        model.load_state_dict(selection.weights)
    model.eval()
    return TrainResult(model, step, accuracy, stopped, elapsed + time.perf_counter() - start, history,
                       selection.step, selection.scores)


def selection_score(scores: dict[str, float]) -> float:
    """Model selection ranks by the mean over target settings: the worst setting alone would prefer an
    untrained model (every setting at chance) to one that learned all settings but one."""
    return sum(scores.values()) / len(scores)


class Selection:
    """The best weights so far by held-out target score (``selection_score``; ties keep the earlier).

    Kept on the CPU, and in the checkpoint, so a resumed run selects what an uninterrupted one would.
    """

    def __init__(self) -> None:
        self.step: int | None = None
        self.scores: dict[str, float] = {}
        self.weights: dict[str, torch.Tensor] | None = None

    @staticmethod
    def from_history(history: list[dict[str, Any]], weights: dict[str, torch.Tensor] | None) -> Selection:
        selection = Selection()
        if weights is not None:
            scored = [h for h in history if "target" in h]
            top = max(scored, key=lambda h: (selection_score(h["target"]), -h["step"]))
            selection.step, selection.scores, selection.weights = top["step"], top["target"], weights
        return selection

    def offer(self, step: int, scores: dict[str, float], model: torch.nn.Module) -> None:
        if self.step is None or selection_score(scores) > selection_score(self.scores):
            self.step, self.scores = step, dict(scores)
            self.weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def replace_train(cell: Cell, **changes: Any) -> Cell:
    """A copy of ``cell`` with some training settings changed."""
    return dataclasses.replace(cell, train=dataclasses.replace(cell.train, **changes))
