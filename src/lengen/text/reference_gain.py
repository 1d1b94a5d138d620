"""How much a reference model gains from distant context on held-out text (issue 14, point 1).

``distant gain`` of the token at position p = its loss reading only its last ``near`` tokens minus its
loss reading the whole window (positions > near only). Reported: the mean over sampled tokens with a 95%
bootstrap interval over windows, and the share of tokens gaining >= ``threshold`` nats (the tokens the
gain-recovered analysis measures).

A reference is a lengen cell folder (the text task of its own run: corpus, tokenizer, vocabulary) or a
Hugging Face causal LM, folder or ``.gguf`` (its own tokenizer on the corpus's held-out documents, as
``lengen.text.corpus`` splits them; nothing is downloaded):

    python -m lengen.text.reference_gain runs/language/cells/<reference cell> --windows 32
    python -m lengen.text.reference_gain path/to/SmolLM2-135M-Instruct.Q4_1.gguf --corpus kjv --windows 8 --positions 32
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lengen.check.existing import load_hf
from lengen.checkpoint import load_model
from lengen.config import Cell
from lengen.errors import LengenError
from lengen.text.corpus import read_documents, split_documents
from lengen.text.length_eval import near_context_losses, token_losses, validation_windows


@dataclass
class GainReport:
    description: str
    corpus: str
    context: int
    near: int
    windows: int
    tokens: int  # scored tokens (positions > near)
    mean_gain: float
    gain_lo: float
    gain_hi: float
    share_above: float  # share of tokens gaining >= threshold
    threshold: float
    full_loss: float  # mean loss reading the whole window
    seconds: float

    def line(self) -> str:
        return (f"{self.description} on {self.corpus}: distant gain (context {self.context} vs last {self.near}) "
                f"{self.mean_gain:+.3f} nats/token [95% over windows {self.gain_lo:+.3f}, {self.gain_hi:+.3f}], "
                f"{self.share_above:.1%} of {self.tokens} tokens gain >= {self.threshold} nats; loss {self.full_loss:.3f}; "
                f"{self.windows} windows, {self.seconds:.0f} s")


def summarize(gain: np.ndarray, full: np.ndarray, description: str, corpus: str, context: int, near: int,
              threshold: float, seconds: float, seed: int = 0) -> GainReport:
    """``gain``, ``full``: [W, S] per sampled token (nan: not sampled)."""
    ok = np.isfinite(gain)
    per_window_sum, per_window_n = np.nansum(gain, 1), ok.sum(1)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(1000):
        pick = rng.integers(0, len(gain), len(gain))
        boots.append(per_window_sum[pick].sum() / max(1, per_window_n[pick].sum()))
    return GainReport(description, corpus, context, near, len(gain), int(ok.sum()), float(np.nanmean(gain)),
                      float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)),
                      float((gain[ok] >= threshold).mean()), threshold, float(np.nanmean(full)), seconds)


def lengen_gain(cell_dir: str | Path, context: int, near: int, windows: int, threshold: float,
                seed: int = 12345) -> GainReport:
    start = time.perf_counter()
    path = Path(cell_dir)
    if not (path / "cell.json").is_file():
        raise LengenError(f"{path}: not a lengen cell folder (no cell.json)")
    cell = Cell.from_dict(json.loads((path / "cell.json").read_text(encoding="utf-8")))
    model = load_model(path).model
    w = validation_windows(cell.build_eval_task(), context, windows, seed)
    full = token_losses(model, w).numpy()
    short = near_context_losses(model, w, near).numpy()
    corpus = str(cell.task_args.get("corpus", "?"))
    return summarize((short - full)[:, near:], full[:, near:], f"lengen {cell.scheme.label} (trained at "
                     f"{cell.train.max_len})", corpus, context, near, threshold, time.perf_counter() - start)


def _hf_windows(tokenizer: Any, corpus: str, context: int, windows: int, seed: int) -> torch.Tensor:
    """``windows`` windows of ``context`` tokens inside held-out documents (the corpus's validation split)."""
    docs, _ = read_documents(corpus)
    _, held_out = split_documents(docs, 0.1)
    ids = [tokenizer(d)["input_ids"] for d in held_out]
    long = [x for x in ids if len(x) >= context]
    if not long:
        raise LengenError(f"corpus {corpus}: no held-out document holds {context} tokens")
    rng = np.random.default_rng([seed, context])
    out = []
    for _ in range(windows):
        doc = long[int(rng.integers(len(long)))]
        s = int(rng.integers(0, len(doc) - context + 1))
        out.append(doc[s:s + context])
    return torch.tensor(out, dtype=torch.long)


@torch.no_grad()
def hf_gain(model_path: str, corpus: str, context: int, near: int, windows: int, positions: int, threshold: float,
            seed: int = 12345) -> GainReport:
    """A Hugging Face reference on ``positions`` sampled positions > near of each window."""
    start = time.perf_counter()
    model, tokenizer, _, description = load_hf(model_path)
    if tokenizer is None:
        raise LengenError(f"{model_path}: no tokenizer beside the model")
    model.eval()
    w = _hf_windows(tokenizer, corpus, context, windows, seed)
    rng = np.random.default_rng(seed)
    gain = np.full((len(w), positions), np.nan)
    full = np.full((len(w), positions), np.nan)
    for i, row in enumerate(w):
        logits = model(input_ids=row[None, :-1], use_cache=False).logits[0].float()
        loss = F.cross_entropy(logits, row[1:], reduction="none")  # loss[p - 1] = token p
        ps = np.sort(rng.choice(np.arange(near + 1, context), min(positions, context - near - 1), replace=False))
        rows = torch.stack([row[p - near:p] for p in ps])
        last = model(input_ids=rows, use_cache=False).logits[:, -1].float()
        near_loss = F.cross_entropy(last, row[torch.from_numpy(ps)], reduction="none")
        gain[i, :len(ps)] = (near_loss - loss[torch.from_numpy(ps - 1)]).numpy()
        full[i, :len(ps)] = loss[torch.from_numpy(ps - 1)].numpy()
    return summarize(gain, full, description.split(" from ")[0] + f" ({Path(model_path).name})", corpus, context,
                     near, threshold, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Distant-context gain of a reference model on held-out text.")
    parser.add_argument("model", help="a lengen cell folder, or a Hugging Face model folder / .gguf file")
    parser.add_argument("--corpus", default="kjv", help="for a Hugging Face model: kjv, shakespeare or a path")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--near", type=int, default=63)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--positions", type=int, default=32, help="Hugging Face: sampled positions per window")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.near < 1 or args.context < args.near + 2:
        raise SystemExit(f"lengen: --context ({args.context}) must exceed --near + 1 ({args.near + 1})")
    try:
        if (Path(args.model) / "cell.json").is_file():
            report = lengen_gain(args.model, args.context, args.near, args.windows, args.threshold)
        else:
            report = hf_gain(args.model, args.corpus, args.context, args.near, args.windows, args.positions,
                             args.threshold)
    except LengenError as e:
        raise SystemExit(f"lengen: {e}") from None
    print(report.line())


if __name__ == "__main__":
    main()
