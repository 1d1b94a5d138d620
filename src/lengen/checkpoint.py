"""Checkpoints: safetensors weights and optimizer tensors, plus a JSON state (step, RNGs, config).

A checkpoint is a folder. It is written as ``<name>.tmp`` and then swapped in with renames, so a run
killed at any moment leaves either the previous checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lengen.config import Cell
from lengen.errors import LengenError
from lengen.io import atomic_write_json, fsync_dir, fsync_file
from lengen.model import Transformer
from lengen.tasks import Task

MODEL_FILE, OPTIM_FILE, STATE_FILE = "model.safetensors", "optimizer.safetensors", "state.json"
BEST_FILE = "best.safetensors"  # the weights model selection kept (lengen.train.Selection), if any


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # tied weights share storage, which safetensors refuses; store each name's own copy
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: dict[str, Any], best: dict[str, torch.Tensor] | None = None) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_weights(model), str(tmp / MODEL_FILE))
    if best is not None:
        save_file({k: v.contiguous() for k, v in best.items()}, str(tmp / BEST_FILE))
    if optimizer is not None:
        opt = optimizer.state_dict()
        tensors = {f"{i}.{name}": t.detach().cpu().contiguous()
                   for i, s in opt["state"].items() for name, t in s.items()}
        save_file(tensors, str(tmp / OPTIM_FILE))
        state = {**state, "optimizer_param_groups": opt["param_groups"]}
    atomic_write_json(tmp / STATE_FILE, state)
    for name in (MODEL_FILE, OPTIM_FILE):  # on disk before the swap makes them the checkpoint
        if (tmp / name).exists():
            fsync_file(tmp / name)
    fsync_dir(tmp)
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    tmp.rename(path)
    fsync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(path: Path) -> Path | None:
    """The newest complete checkpoint at ``path`` (falls back to ``.old`` after a crash mid-swap)."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + ".old")):
        if (candidate / STATE_FILE).is_file() and (candidate / MODEL_FILE).is_file():
            return candidate
    return None


def read_state(path: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LengenError(f"checkpoint {path}: unreadable {STATE_FILE} ({e.__class__.__name__})") from None
    return state


def load_weights(path: Path, model: torch.nn.Module) -> None:
    try:
        weights = load_file(str(Path(path) / MODEL_FILE))
    except (OSError, SafetensorError) as e:
        raise LengenError(f"checkpoint {path}: unreadable {MODEL_FILE} ({e})") from None
    weights = getattr(model, "upgrade_state_dict", dict)(weights)  # keys renamed since it was written
    mismatch = first_mismatch(weights, model.state_dict())
    if mismatch:
        raise LengenError(f"checkpoint {path}: its weights do not fit this model's configuration: {mismatch}")
    model.load_state_dict(weights, strict=True)


def first_mismatch(saved: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> str | None:
    """The first tensor (in the model's order) that is missing, extra or of another shape, in words."""
    for name, tensor in expected.items():
        if name not in saved:
            return f"tensor {name} {tuple(tensor.shape)} is missing from the checkpoint"
        if saved[name].shape != tensor.shape:
            return f"tensor {name} is {tuple(saved[name].shape)} in the checkpoint, {tuple(tensor.shape)} in the model"
    extra = [name for name in saved if name not in expected]
    if extra:
        return f"the checkpoint has tensor {extra[0]} {tuple(saved[extra[0]].shape)}, which the model lacks"
    return None


def load_best(path: Path) -> dict[str, torch.Tensor] | None:
    """The selected weights stored with a checkpoint (None when it has none)."""
    if not (Path(path) / BEST_FILE).is_file():
        return None
    try:
        return load_file(str(Path(path) / BEST_FILE))
    except (OSError, SafetensorError) as e:
        raise LengenError(f"checkpoint {path}: unreadable {BEST_FILE} ({e})") from None


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    try:
        tensors = load_file(str(Path(path) / OPTIM_FILE))
    except (OSError, SafetensorError) as e:
        raise LengenError(f"checkpoint {path}: unreadable {OPTIM_FILE} ({e})") from None
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = t
    try:
        optimizer.load_state_dict({"state": per_param, "param_groups": state["optimizer_param_groups"]})
    except (KeyError, ValueError) as e:
        raise LengenError(f"checkpoint {path}: its optimizer state does not fit this model ({e})") from None


@dataclass
class LoadedModel:
    model: Transformer
    task: Task
    cell: Cell
    step: int


def load_model(path: str | Path) -> LoadedModel:
    """Load a trained lengen model from a cell folder or a checkpoint folder (eval mode, CPU)."""
    path = Path(path)
    if not path.exists():
        raise LengenError(f"model folder not found: {path}")
    found = find_checkpoint(path) or find_checkpoint(path / "checkpoint")
    if found is None:
        raise LengenError(f"no lengen checkpoint in {path} (expected {STATE_FILE} and {MODEL_FILE})")
    state = read_state(found)
    try:
        cell = Cell.from_dict(state["cell"])
    except (KeyError, TypeError) as e:
        raise LengenError(f"checkpoint {found}: {STATE_FILE} lacks a valid cell config ({e})") from None
    task = cell.build_task()
    cell.model.vocab_size = task.vocab_size
    model = Transformer(cell.model)
    load_weights(found, model)
    best = load_best(found) if state.get("finished") else None
    if best is not None:  # a finished run's model is the one selection kept
        model.load_state_dict(best)
    model.eval()
    return LoadedModel(model=model, task=task, cell=cell, step=int(state.get("step", 0)))
