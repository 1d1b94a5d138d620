"""Per-model summaries of length generalization: the in-distribution bar and L*.

- ``learned``: exact match at the longest training length reaches ``eval.learned_bar``. A model that
  did not learn its task in distribution says nothing about length generalization, so findings and
  plots leave it out (and say how many were left out).
- ``L*``: the longest evaluated length up to which *every* evaluated length scores at least
  ``chance + level * (1 - chance)`` (parity: 0.5 + 0.8 * 0.5 = 0.9). Requiring every shorter length to
  pass keeps a lucky score far out from counting; 0 means even the shortest length failed.
"""

from __future__ import annotations

from collections.abc import Iterable


def l_star_threshold(chance: float, level: float) -> float:
    return chance + level * (1.0 - chance)


def l_star(scores: Iterable[tuple[int, float]], threshold: float) -> int:
    """The largest length n such that every (length, score) with length <= n has score >= threshold."""
    best = 0
    for length, score in sorted(scores):
        if score < threshold:
            break
        best = length
    return best
