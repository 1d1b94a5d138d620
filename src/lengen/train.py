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
from collections.abc import Callable
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
from lengen.holes import delete_tokens, holed_length
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
    """Train the cell's model; with ``out_dir``, checkpoints go to ``out_dir/checkpoint``. ``resume``
    continues from that checkpoint when one exists; ``stop_after`` ends the run after that many steps
    in total, as an interruption would (tests use it to check resume)."""
    cfg = cell.train
    device = _setup(cfg)
    task = cell.build_task()
    model, rng, gen, optimizer = _start(cell, task.vocab_size)
    ckpt_dir = None if out_dir is None else Path(out_dir) / "checkpoint"
    found = find_checkpoint(ckpt_dir) if resume and ckpt_dir is not None else None
    run = _Resumed() if found is None else _resume(found, cell, model, optimizer, rng, gen)
    if run.finished is not None:
        return run.finished
    step, history, elapsed, partial, best = run.step, run.history, run.elapsed, run.partial, run.best
    model.to(device)
    monitor = TargetMonitor(cell, model, device) if _monitored(cfg) and task.exact_match_protocol else None
    selection = Selection.from_history(history, best)
    split = data_split(cfg.batch_size)  # None unless run under torchrun (lengen.ddp)
    step_loss = _loss_function(model, split, cfg.compile)
    head_weights = head_loss_weights(model, cfg)
    pose = None if cfg.pose_target_length is None else PoSE(cfg.pose_target_length, cfg.pose_chunks)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    loss_sum, correct_sum = (torch.tensor(float(v), device=device) for v in partial[:2])
    scored = int(partial[2])
    accuracy, stopped = (history[-1]["accuracy"] if history else float("nan")), False
    start = time.perf_counter()
    rank0 = split is None or split.rank == 0

    def checkpoint(finished: bool) -> None:
        if ckpt_dir is not None and rank0:
            save_checkpoint(ckpt_dir, model, optimizer, {
                "cell": cell.to_dict(), "step": step, "rng": _rng_state(rng, gen), "history": history,
                "window": [float(loss_sum), float(correct_sum), scored],
                "wall_s": elapsed + time.perf_counter() - start,
                "finished": finished, "train_accuracy": accuracy, "stopped_early": stopped,
                "selected_step": selection.step, "target_scores": selection.scores,
            }, best=selection.weights)

    model.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and rank0), leave=False, dynamic_ncols=True,
               desc=f"{cell.scheme.label} {cell.grid_values} seed {cell.seed}")
    while step < cfg.steps:
        batch = _next_batch(task, model, cfg, rng, gen, pose, split, device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        with autocast if autocast is not None else contextlib.nullcontext():
            loss, correct, count = step_loss(model, batch, batch.position_ids, head_weights)
        _update(model, optimizer, loss, cfg.grad_clip)
        step += 1
        loss_sum += loss.detach()
        correct_sum += correct
        scored += count
        bar.update(1)
        if step % cfg.check_every == 0 or step == cfg.steps:
            window = (float(loss_sum), float(correct_sum), scored) if split is None else \
                split.reduce(loss_sum, correct_sum, scored)  # the only host sync, once per check window
            entry, stop_score, stop = _close_window(step, window, history, cfg, model, monitor, selection)
            accuracy = entry["accuracy"]
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", acc=f"{accuracy:.3f}", target=f"{stop_score:.3f}")
            loss_sum.zero_()
            correct_sum.zero_()
            scored = 0
            if stop:
                stopped = step < cfg.steps
                break
        interrupted = stop_after is not None and step >= stop_after
        if interrupted or (step % cfg.checkpoint_every == 0 and step < cfg.steps):
            checkpoint(False)
        if interrupted:
            bar.close()
            raise KeyboardInterrupt
    bar.close()
    if monitor is not None and cfg.curve_every and history and "curves" not in history[-1]:
        history[-1]["curves"] = monitor.curves(model)
    checkpoint(True)
    selection.keep(model)
    return TrainResult(model, step, accuracy, stopped, elapsed + time.perf_counter() - start, history,
                       selection.step, selection.scores)


def _setup(cfg: Any) -> torch.device:
    cfg.validate()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    return pick_device(cfg.device)


def _next_batch(task: Any, model: Transformer, cfg: Any, rng: np.random.Generator, gen: torch.Generator,
                pose: PoSE | None, split: Any, device: torch.device) -> Any:
    """The next training batch (one random length), its ids prepared, on the device."""
    length = int(rng.integers(cfg.min_len, cfg.max_len + 1))
    if cfg.holes:  # lengen.holes: drawn longer, then tokens deleted from the beginning
        batch = delete_tokens(task.sample(rng, cfg.batch_size, holed_length(length, cfg.holes)), cfg.holes, rng)
    else:
        batch = task.sample(rng, cfg.batch_size, length)
    # ids are rewritten on the CPU, where the seeded generator lives, then moved with the batch
    batch.position_ids = prepare_position_ids(model, batch, cfg.ids, gen, pose)
    if cfg.compile:  # the compiled forward skips this check (it would break the graph)
        model.positions.check_ids(batch.position_ids)
    return (batch if split is None else split.shard(batch)).to(device)


def _start(cell: Cell, vocab_size: int) -> tuple[Transformer, np.random.Generator, torch.Generator,
                                                 torch.optim.Optimizer]:
    """The cell's model at initialisation, its data and id streams, and its optimizer."""
    cfg = cell.train
    # a copy: mutating the cell would change its key (the experiment runner looks cells up by key)
    model_cfg = dataclasses.replace(cell.model, vocab_size=vocab_size)
    torch.manual_seed(cell.seed)
    model = Transformer(model_cfg)
    rng = np.random.default_rng([cell.seed, 0])
    gen = torch.Generator().manual_seed(cell.seed + 1)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "positions." not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "positions." not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98),
                                  foreach=True)  # CPU default is a loop over tensors; same numbers, 1.7x faster
    return model, rng, gen, optimizer


@dataclass
class _Resumed:
    """Where a run stands: at its start, or as its checkpoint left it."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0
    partial: list[Any] = field(default_factory=lambda: [0.0, 0.0, 0])  # loss sum, correct, scored of the window
    best: dict[str, torch.Tensor] | None = None
    finished: TrainResult | None = None  # the result, when the checkpoint is of a finished run


def _resume(found: Path, cell: Cell, model: Transformer, optimizer: torch.optim.Optimizer,
            rng: np.random.Generator, gen: torch.Generator) -> _Resumed:
    state = read_state(found)
    if not same_configuration(state.get("cell"), cell):
        raise LengenError(f"cannot resume from {found}: it was written by a different configuration")
    load_weights(found, model)
    load_optimizer(found, optimizer, state)
    _restore_rng(state["rng"], rng, gen)
    run = _Resumed(state["step"], state["history"], state["wall_s"], state["window"], load_best(found))
    if state.get("finished"):
        if run.best is not None:
            model.load_state_dict(run.best)
        model.eval()
        run.finished = TrainResult(model, run.step, state["train_accuracy"], state["stopped_early"], run.elapsed,
                                   run.history, state.get("selected_step"), state.get("target_scores", {}))
    return run


def _loss_function(model: Transformer, split: Any, compile_: bool) -> Callable[..., Any]:
    step_loss = answer_loss if split is None else split.wrap(model, answer_loss)
    if compile_:  # dynamic: one compilation covers every training length
        return torch.compile(step_loss, dynamic=True)
    return step_loss


def _monitored(cfg: Any) -> bool:
    """Whether the run scores held-out target samples (lengen.monitor) at every check."""
    return bool(cfg.stop_on == "target" or cfg.select == "best" or cfg.curve_every)


def _update(model: Transformer, optimizer: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def _close_window(step: int, window: tuple[float, float, int], history: list[dict[str, Any]], cfg: Any,
                  model: Transformer,
                  monitor: TargetMonitor | None, selection: Selection) -> tuple[dict[str, Any], float, bool]:
    """The history entry of a check window ending at ``step``, the score the stop rule reads, and
    whether training stops here."""
    mean_loss = window[0] / (step - (history[-1]["step"] if history else 0))  # over the window's steps
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
    stop = cfg.target_accuracy is not None and stop_score >= cfg.target_accuracy
    if stop and monitor is not None and cfg.curve_every and "curves" not in entry:
        entry["curves"] = monitor.curves(model)  # where early stopping lands, on the curves
    return entry, stop_score, stop


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

    def keep(self, model: torch.nn.Module) -> None:
        """Load the selected weights into ``model`` (if any were selected) and set it to eval mode."""
        if self.weights is not None:
            model.load_state_dict(self.weights)
        model.eval()

    def offer(self, step: int, scores: dict[str, float], model: torch.nn.Module) -> None:
        if self.step is None or selection_score(scores) > selection_score(self.scores):
            self.step, self.scores = step, dict(scores)
            self.weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def replace_train(cell: Cell, **changes: Any) -> Cell:
    """A copy of ``cell`` with some training settings changed."""
    return dataclasses.replace(cell, train=dataclasses.replace(cell.train, **changes))
