"""The user's data for `lengen check`: documents from text, JSONL or CSV files, turned into token streams.

Accepted: ``kjv`` / ``shakespeare`` (as ``lengen.text.corpus`` reads them), a UTF-8 ``.txt`` file, a
``.jsonl`` file whose records hold a text field or a field of token-id lists (non-text sequences), a
``.csv`` file with a text column, or a folder of such files (read recursively, sorted by path).

Documents are split into training and validation by document (``lengen.text.corpus.split_documents``
for text; the same seeded rule for id lists) and joined into one stream per split, each document
followed by the end-of-document id. Windows may therefore cross a document boundary (as a long input
made of several documents would).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lengen.errors import LengenError
from lengen.text.corpus import NAMED_CORPORA, jsonl_records, read_documents, split_documents
from lengen.text.tokenizers import gpt2_tokenizer

SUFFIXES = (".txt", ".jsonl", ".ndjson", ".csv")
TOKENIZERS = ("gpt2", "bytes")
MAX_ID = 2**24 - 1  # largest token id accepted without --model (the vocabulary is the largest id + 2)


@dataclass
class Documents:
    """Either texts or token-id lists, never both."""

    texts: list[str]
    id_lists: list[list[int]]
    digest: str  # sha1 of the bytes read (the cache key's data part)
    source: str

    @property
    def is_ids(self) -> bool:
        return bool(self.id_lists)


@dataclass
class TokenStreams:
    train: np.ndarray  # int64 ids, documents joined, each followed by `eot`
    validation: np.ndarray
    vocab_size: int  # ids are < vocab_size
    eot: int
    tokenizer: str  # what made the ids: gpt2, bytes, the model's tokenizer, or "ids" (given as ids)


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise LengenError(f"{path} could not be read: {e.strerror or type(e).__name__}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LengenError(f"{path} is not UTF-8 text (invalid byte at offset {e.start})") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark (spreadsheet exports) is not part of the data
    if not text.strip():
        raise LengenError(f"{path} is empty")
    return text


def _jsonl(path: Path, text: str, field: str | None) -> tuple[list[str], list[list[int]]]:
    texts: list[str] = []
    ids: list[list[int]] = []
    for number, obj in jsonl_records(path, text):
        key = field or next((k for k in ("text", "tokens", "ids") if k in obj), None)
        if key is None or key not in obj:
            raise LengenError(f"{path}:{number}: no field {field or 'text'!r} (name the field with --field)")
        value = obj[key]
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            bad = [v for v in value if not isinstance(v, int) or isinstance(v, bool) or v < 0]
            if bad:
                raise LengenError(f"{path}:{number}: field {key!r}: token id {json.dumps(bad[0])} is not an int >= 0")
            ids.append(value)
        else:
            raise LengenError(f"{path}:{number}: field {key!r} is neither text nor a list of token ids (ints >= 0)")
        if texts and ids:
            raise LengenError(f"{path}:{number}: field {key!r} mixes text and token-id records")
    if not texts and not ids:
        raise LengenError(f"{path} has no records")
    return texts, ids


def _csv(path: Path, text: str, column: str | None) -> list[str]:
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))  # a document may exceed the 128 KiB default
    reader = csv.DictReader(io.StringIO(text))
    name = column or "text"
    try:
        fields = reader.fieldnames
        if fields is None or name not in fields:
            have = ", ".join(repr(f) for f in fields or [])  # repr: a quoted name may hold a line break
            raise LengenError(f"{path}: no column {name!r} (columns: {have or 'none'}; name one with --field)")
        docs = [row[name] for row in reader if row.get(name)]
    except csv.Error as e:
        raise LengenError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None
    if not docs:
        raise LengenError(f"{path}: column {name!r} is empty")
    return docs


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise LengenError(f"folder {path} holds no .txt, .jsonl or .csv files")
    return files


def read_data(source: str, field: str | None = None) -> Documents:
    """The documents of ``source`` (see the module docstring), with one clear error line for bad input."""
    if source in NAMED_CORPORA and field:
        raise LengenError(f"--field names a JSONL field or CSV column; {source} is plain text")
    if source in NAMED_CORPORA:
        named, content = read_documents(source)
        return Documents(texts=named, id_lists=[], digest=content, source=source)
    path = Path(source).expanduser()
    if not path.exists():
        raise LengenError(f"data not found: {source} (give kjv, shakespeare, a .txt/.jsonl/.csv file or a folder)")
    if not path.is_file() and not path.is_dir():
        raise LengenError(f"data {source} is neither a regular file nor a folder (a device, pipe or socket)")
    digest = hashlib.sha1()
    texts: list[str] = []
    ids: list[list[int]] = []
    files = _files(path)
    if field and all(f.suffix == ".txt" for f in files):
        raise LengenError(f"--field names a JSONL field or CSV column; {source} holds only .txt files")
    for file in files:
        if file.suffix not in SUFFIXES:
            raise LengenError(f"{file}: unknown file kind {file.suffix!r}; give .txt, .jsonl or .csv")
        text = _decode(file)
        digest.update(file.name.encode() + b"\0" + text.encode())
        if file.suffix in (".jsonl", ".ndjson"):
            t, i = _jsonl(file, text, field)
            texts += t
            ids += i
        elif file.suffix == ".csv":
            texts += _csv(file, text, field)
        else:
            texts.append(text)
        if texts and ids:
            raise LengenError(f"{source} mixes text and token-id records")
    texts = [t for t in texts if t.strip()]
    ids = [i for i in ids if i]
    if not texts and not ids:
        raise LengenError(f"{source} is empty")
    return Documents(texts=texts, id_lists=ids, digest=digest.hexdigest(), source=str(path))


def _split_ids(docs: list[list[int]], validation_fraction: float, seed: int = 0) -> tuple[list[list[int]], ...]:
    if len(docs) == 1:
        cut = int(len(docs[0]) * (1 - validation_fraction))
        return [docs[0][:cut]], [docs[0][cut:]]
    order = np.random.default_rng(seed).permutation(len(docs))
    val = set(order[: max(1, round(len(docs) * validation_fraction))].tolist())
    return [d for i, d in enumerate(docs) if i not in val], [d for i, d in enumerate(docs) if i in val]


def _join(docs: list[list[int]], eot: int) -> np.ndarray:
    out: list[int] = []
    for d in docs:
        out.extend(d)
        out.append(eot)
    return np.asarray(out, dtype=np.int64)


def text_encoder(name: str) -> tuple[Callable[[str], list[int]], int, int]:
    """(encode, end-of-document id, vocabulary size) of ``gpt2`` or ``bytes``."""
    if name == "bytes":
        return (lambda s: list(s.encode("utf-8"))), 256, 257
    if name == "gpt2":
        tok = gpt2_tokenizer()
        return tok.encode, tok.separator[0], tok.vocab_size
    raise LengenError(f"unknown tokenizer {name!r}; known: {', '.join(TOKENIZERS)}")


def tokenize(docs: Documents, encode: Callable[[str], list[int]] | None, eot: int, vocab_size: int,
             tokenizer: str, validation_fraction: float = 0.1) -> TokenStreams:
    """Training and validation streams. Id lists are used as given (``encode`` is ignored); their
    vocabulary is the largest id + 2 (the extra id is their end-of-document token) unless ``vocab_size``
    (a model's) is given, which the ids must fit."""
    if docs.is_ids:
        top = max(max(d) for d in docs.id_lists)
        if vocab_size and top >= vocab_size:
            raise LengenError(f"{docs.source}: token id {top} is outside the model's vocabulary of {vocab_size}")
        if not vocab_size and top > MAX_ID:
            raise LengenError(f"{docs.source}: token id {top} is larger than {MAX_ID}, the largest id accepted "
                              "without --model (renumber the ids from 0)")
        if not vocab_size:
            vocab_size, eot = top + 2, top + 1
        train, val = _split_ids(docs.id_lists, validation_fraction)
        return TokenStreams(_join(train, eot), _join(val, eot), vocab_size, eot, tokenizer or "ids")
    if encode is None:
        raise LengenError("text data needs a tokenizer")
    train_t, val_t = split_documents(docs.texts, validation_fraction)
    return TokenStreams(_join([encode(t) for t in train_t], eot), _join([encode(t) for t in val_t], eot),
                        vocab_size, eot, tokenizer)


def compact(streams: TokenStreams, size: int) -> tuple[TokenStreams, float]:
    """Streams re-coded to the ``size - 1`` most frequent training ids (end-of-document always kept) and
    one unknown id, and the share of training tokens kept. Why: a 50257-way output layer costs more than
    a small model's whole body on a CPU (as ``lengen.text.corpus.compact_vocabulary``)."""
    if streams.vocab_size <= size:
        return streams, 1.0
    counts = np.bincount(streams.train, minlength=streams.vocab_size)
    counts[streams.eot] = np.iinfo(np.int64).max
    order = np.argsort(-counts, kind="stable")[: size - 1]
    table = np.full(streams.vocab_size, size - 1, dtype=np.int64)
    table[order] = np.arange(size - 1)
    kept = float((table[streams.train] < size - 1).mean())
    return TokenStreams(table[streams.train], table[streams.validation], size, int(table[streams.eot]),
                        streams.tokenizer + f" (top {size - 1} ids)"), kept
