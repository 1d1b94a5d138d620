"""Text with a planted long-range dependence of known k at known distances (issue 14's pipeline check).

A document is a line of ``events`` events of ``length`` characters each (read with the ``bytes``
tokenizer, one token per character). In an event every character is a filler letter (the letters
cycle, so filler is predictable from the last token) except:

- ``k`` **code** characters near the start (positions below ``length // 4``); code slot j draws from its
  own alphabet of ``alphabet`` characters, so a code is recognisable by its content alone;
- a **query** character naming k just before the answer;
- the **answer**: the tuple of the k codes' values as one character (``alphabet ** k`` possible answers).

The answer lies at least ``near + 1`` tokens after every code, so with only its last ``near`` tokens a
model sees the query (it knows an answer comes and which k) but no code: the answer is uniform over
``alphabet ** k`` values; reading the whole window it is certain. The distant gain is ``k log(alphabet)``
nats, and each code carries ``log(alphabet)`` of it: restoring j of the k codes recovers j / k of the
gain, under 80% for every j < k <= 4, so the sufficiency measure (``lengen.text.sufficiency``, share
0.8) must find exactly the k codes, and a reader that can use only one distant token (``keep_codes``)
recovers all of a 1-token code's gain and half of a 2-token code's (the planted effect on the outcome,
``lengen.text.recovery``). (A sum of the codes modulo ``alphabet``, where k - 1 codes carry nothing,
was tried first: a small reference did not learn it in a test's budget.)

    python -m lengen.text.planted_text OUT_FOLDER --documents 400   # a corpus folder for `task: text`
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lengen.errors import LengenError
from lengen.io import atomic_write_text

SLOT_CHARS = "0123456789!#$%&*+=?@"  # code slot j uses SLOT_CHARS[j*alphabet : (j+1)*alphabet]
QUERY_CHARS = "<>^|~"  # query for k = 1, 2, ...
ANSWER_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ[]{}"  # answer value 0, 1, ...
FILLER = "abcdefghijklmnop"


@dataclass(frozen=True)
class PlantedEvent:
    k: int
    codes: tuple[int, ...]  # character positions of the k codes
    answer: int  # character position of the answer (the query is at answer - 1)


@dataclass
class PlantedText:
    ks: tuple[int, ...] = (1, 2, 3)  # each document draws its k uniformly from these
    alphabet: int = 3
    length: int = 64
    near: int = 15  # every code is more than `near` tokens before the answer
    events: int = 8  # events per document, one after the other
    # training corpora: each code is replaced by filler with this probability (the answer still counts it),
    # so a model learns what a missing code leaves open and restoring j of k codes recovers j/k of the gain
    drop: float = 0.0

    def validate(self) -> None:
        if not self.ks or min(self.ks) < 1 or max(self.ks) > len(QUERY_CHARS):
            raise LengenError(f"planted text: every k must be in 1..{len(QUERY_CHARS)}, got {list(self.ks)}")
        if self.alphabet < 2 or self.alphabet ** max(self.ks) > len(ANSWER_CHARS) or \
                max(self.ks) * self.alphabet > len(SLOT_CHARS):
            raise LengenError(f"planted text: needs alphabet >= 2, alphabet ** max k <= {len(ANSWER_CHARS)} and "
                              f"max k x alphabet <= {len(SLOT_CHARS)}; got alphabet {self.alphabet}, k up to {max(self.ks)}")
        if not 0 <= self.drop < 1:
            raise LengenError(f"planted text: drop must be in [0, 1), got {self.drop}")
        if self.events < 1:
            raise LengenError(f"planted text: events per document must be >= 1, got {self.events}")
        if self.near < 1 or self.length // 4 < max(self.ks) or self.length // 2 - 1 - self.near < self.length // 4 - 1:
            raise LengenError(f"planted text: a document of {self.length} characters cannot hold codes in its first "
                              f"quarter more than near = {self.near} tokens before an answer in its second half")

    def event(self, rng: np.random.Generator, phase: int) -> tuple[str, PlantedEvent]:
        """One event of ``length`` characters; its filler continues the cycle at ``phase``."""
        k = int(rng.choice(self.ks))
        chars = [FILLER[(phase + i) % len(FILLER)] for i in range(self.length)]
        codes = tuple(sorted(int(c) for c in rng.choice(self.length // 4, k, replace=False)))
        values = rng.integers(0, self.alphabet, k)
        for slot, (pos, v) in enumerate(zip(codes, values, strict=True)):
            if rng.random() >= self.drop:
                chars[pos] = SLOT_CHARS[slot * self.alphabet + int(v)]
        answer = int(rng.integers(self.length // 2, self.length))
        chars[answer - 1] = QUERY_CHARS[k - 1]
        chars[answer] = ANSWER_CHARS[int(sum(int(v) * self.alphabet ** j for j, v in enumerate(values)))]
        return "".join(chars), PlantedEvent(k, codes, answer)

    def documents(self, n: int, seed: int) -> tuple[list[str], list[PlantedEvent]]:
        """``n`` documents of ``events`` events each, and every event with positions in its own window
        (``windows``). A model trained on windows drawn anywhere in a document also sees answers whose
        codes were cut off, so a truncated context is in its training distribution, not a document start."""
        self.validate()
        rng = np.random.default_rng(seed)
        docs, events = [], []
        for _ in range(n):
            phase = int(rng.integers(len(FILLER)))  # the filler cycles through the letters: easy to predict
            parts = []
            for _ in range(self.events):
                text, ev = self.event(rng, phase)
                parts.append(text)
                events.append(ev)
                phase += self.length
            docs.append("".join(parts))
        return docs, events

    def windows(self, docs: list[str]) -> torch.Tensor:
        """Every event as a byte-token window ``[n * events, length]`` (ids as the ``bytes`` tokenizer gives
        them), in the order of ``documents``' events."""
        return torch.tensor([list(d[i:i + self.length].encode("ascii")) for d in docs
                             for i in range(0, len(d), self.length)], dtype=torch.long)

    def write_corpus(self, folder: str | Path, n: int, seed: int) -> list[PlantedEvent]:
        """``n`` documents as ``doc00000.txt`` ... under ``folder`` (a corpus for ``task: text``)."""
        docs, events = self.documents(n, seed)
        for i, doc in enumerate(docs):
            atomic_write_text(Path(folder) / f"doc{i:05d}.txt", doc + "\n")
        return events


def reference_experiment(corpus: str | Path, cache_dir: str | Path, steps: int, layers: int = 1, d_model: int = 64,
                         lr: float = 1e-2, holes: int = 0, seed: int = 0) -> dict[str, Any]:
    """The raw experiment of a RoPE reference for a planted corpus folder (``write_corpus``): byte tokens,
    windows of 48 drawn anywhere in the documents, so it also sees answers whose codes were cut off."""
    return {"experiment": "planted", "task": "text",
            "task_args": {"corpus": str(corpus), "tokenizer": "bytes", "validation_fraction": 0.2,
                          "cache_dir": str(cache_dir)},
            "schemes": [{"label": "reference", "position": "rope"}], "seeds": [seed],
            "model": {"d_model": d_model, "n_layers": layers, "n_heads": 4},
            "train": {"steps": steps, "batch_size": 32, "min_len": 48, "max_len": 48, "warmup": 20, "lr": lr,
                      "target_accuracy": None, "check_every": steps, "holes": holes},
            "eval": {"lengths": [48], "samples": 4}}


def _filler_phase(window: torch.Tensor) -> int:
    """The filler cycle's phase of an event window: letter at position i is FILLER[(phase + i) % 16]."""
    letters = FILLER.encode("ascii")
    for i, t in enumerate(window.tolist()):
        if t in letters:
            return (letters.index(t) - i) % len(FILLER)
    raise LengenError("planted text: a window without filler")


def _as_filler(window: torch.Tensor, positions: Sequence[int]) -> None:
    phase = _filler_phase(window)
    for j in positions:
        window[j] = FILLER.encode("ascii")[(phase + j) % len(FILLER)]


def keep_codes(windows: torch.Tensor, events: Sequence[PlantedEvent], m: int) -> torch.Tensor:
    """Each event window with every code after its first ``m`` turned into filler: a reader that can use at
    most ``m`` distant tokens (it recovers min(m, k) / k of the information of a k-token code)."""
    out = windows.clone()
    for i, ev in enumerate(events):
        _as_filler(out[i], list(ev.codes[m:]))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a corpus folder of planted long-range text.")
    parser.add_argument("out")
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--near", type=int, default=15)
    parser.add_argument("--alphabet", type=int, default=3)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--events", type=int, default=8)
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    gen = PlantedText(tuple(args.ks), args.alphabet, args.length, args.near, args.events, args.drop)
    gen.write_corpus(args.out, args.documents, args.seed)
    print(f"wrote {args.documents} documents to {args.out}")


if __name__ == "__main__":
    main()
