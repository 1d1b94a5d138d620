"""Token-id corpora with a known dependency structure, to validate `lengen check`'s verdicts.

For a training context N, each corpus is a stream of documents where, with probability ``p`` (0.7),
the next token follows a rule and otherwise is drawn uniformly:

- ``local`` (sparse and local): x_t = x_{t-2} (16 symbols). One token at distance 1: nothing beyond N
  is needed; the same copy rule as ``far`` at another distance, so the two differ only in where. Right verdict: go, or go with a change (whichever step 2 finds holds the loss).
- ``far`` (sparse but far): x_t = x_{t-D} with D = 2N (16 symbols). One token, beyond N: a model
  trained at N never sees it. Right verdict: no-go at N (sparse: a longer training context would help).
- ``dense`` (dense and far): bits; x_t = majority(x_{t-D}, x_{t-D-s}, ..., x_{t-D-4s}) with D = 2N and
  s = N/8. Five tokens beyond N, none decisive alone, each in its own chunk of the sufficiency search
  (chunks are N/8 long). Why not 15 adjacent bits (the first version): neighbouring outputs then
  share 14 of their 15 inputs, so the previous output plus the bits entering and leaving the window
  predict the next one, and for lopsided windows a few bits decide the majority anyway: per
  prediction the dependence was not dense. With 5 bits, 62% of windows split 3-2 and every bit of
  the majority is pivotal. Right verdict: no-go at N (dense).

    from lengen.check.synthetic import synthetic_documents
    docs = synthetic_documents("far", context=32, tokens=200_000)
"""

from __future__ import annotations

import hashlib

import numpy as np

from lengen.check.data import Documents
from lengen.errors import LengenError

KINDS = ("local", "far", "dense")
RIGHT_VERDICT = {"local": ("go", "go with change"), "far": ("no-go",), "dense": ("no-go",)}
DENSE_WIDTH = 5  # far bits each dense prediction takes the majority of, N/8 apart
MAX_TOKENS = 10_000_000  # a corpus is generated token by token in Python (about a second per million)


def _stream(kind: str, n: int, distance: int, rng: np.random.Generator, p: float) -> list[int]:
    vocab = 2 if kind == "dense" else 16
    stride = max(1, distance // 16)  # N/8: one far bit per chunk of the sufficiency search
    x = rng.integers(0, vocab, size=n)
    follow = rng.random(n) < p
    for t in range(n):
        if not follow[t]:
            continue
        if kind == "local" and t >= 2:
            x[t] = x[t - 2]
        elif kind == "far" and t >= distance:
            x[t] = x[t - distance]
        elif kind == "dense" and t >= distance + stride * (DENSE_WIDTH - 1):
            x[t] = int(x[t - distance - stride * np.arange(DENSE_WIDTH)].sum() * 2 > DENSE_WIDTH)
    return x.tolist()


def synthetic_documents(kind: str, context: int, tokens: int = 200_000, seed: int = 0, p: float = 0.7,
                        document: int | None = None) -> Documents:
    """Documents of ``document`` tokens (default 32 N) adding up to about ``tokens`` tokens."""
    if kind not in KINDS:
        raise LengenError(f"unknown synthetic corpus {kind!r}; known: {', '.join(KINDS)}")
    if context < 2:
        raise LengenError(f"synthetic corpora need a context of at least 2, got {context}")
    size = document or 32 * context
    if max(tokens, 2 * size) > MAX_TOKENS:
        raise LengenError(f"a synthetic corpus is at most {MAX_TOKENS:,} tokens and at least 64 x the context; "
                          f"asked for {tokens} tokens (--max-tokens) at context {context} (--context)")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    docs = [_stream(kind, size, 2 * context, rng, p) for _ in range(max(2, tokens // size))]
    digest = hashlib.sha1(f"synthetic {kind} {context} {tokens} {seed} {p} {size}".encode()).hexdigest()
    return Documents(texts=[], id_lists=docs, digest=digest, source=f"synthetic:{kind}")
