"""Natural-language text: offline corpora as token arrays, and per-position loss beyond the training context."""

from lengen.text.corpus import Corpus, TokenSplit, load_corpus

__all__ = ["Corpus", "TokenSplit", "load_corpus"]
