"""Distant sparsity of a token by sufficiency: the fewest distant tokens that, restored into a truncated
context, recover a set share of what the whole context gains (issue 14).

For a token at position p of a window, the *near* block is its last ``near`` tokens (the most a model
trained on ``near + 1``-token windows ever read); every earlier token is *distant*. With a reference
model that has seen every distance:

- ``gain = log p(x_p | whole prefix) - log p(x_p | near block)``: what the distant context is worth.
  Only tokens with ``gain >= threshold`` (default 0.5 nats) are measured: they need distant context.
- a set S of distant positions is **sufficient** when ``log p(x_p | S + near block)`` is within
  ``(1 - share) * gain`` of the whole prefix's (default share 0.8). Every row keeps the positions it
  reads and their ids, so distances are those of the whole window (as ``lengen.check.dependence``,
  whose ``LM`` interface and ``target_logprob`` this module uses).
- **distant sparsity k** = the size of the smallest sufficient set found by a greedy search, and said
  so: the distant positions are ranked two ways, and for each ranking the top r are restored for
  r = 1, 2, ..., 16 and then r = 24, 32, 48, ... (``check.dependence.ladder``) until sufficient; k is
  the smaller of the two (an upper bound on the true minimum; rounded up above 16):

  1. by **single-position ablation effect** (``lengen.text.distant``: each distant position replaced in
     the whole window; from its ``top`` ranking, then the second ranking's order). It finds tokens that
     are needed jointly, where no one of them alone helps (a k-token code whose combination decides).
  2. by the **gain of the position restored alone** into the near block (signed: a position that lowers
     p(x) goes last). It finds redundant evidence (a name repeated in several distant places), which
     ablation misses because no single copy is needed.

``lengen.check.dependence.measure`` (issue 19) ranks fixed chunks by (2) only, with the local block as
the truncation; it is not used here because (2) alone cannot find a jointly needed set (the planted-text
test shows it), and a token's distant context starts at a different offset for every position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lengen.check.dependence import ladder
from lengen.check.lm import LM, target_logprob
from lengen.errors import LengenError

EXACT = 16  # restored-set sizes tried one by one up to this, then the ladder


@dataclass
class SufficiencyConfig:
    threshold: float = 0.5  # nats of distant gain for a token to be measured
    share: float = 0.8  # share of the distant gain a sufficient set recovers

    def validate(self) -> None:
        if self.threshold <= 0:
            raise LengenError(f"sufficiency: the gain threshold must be > 0 nats, got {self.threshold}")
        if not 0 < self.share <= 1:
            raise LengenError(f"sufficiency: share must be in (0, 1], got {self.share}")


@dataclass
class Sufficiency:
    """One entry per measured token (window ``window[i]``, position ``position[i]``)."""

    window: np.ndarray  # [N] int
    position: np.ndarray  # [N] int: the predicted token's position in its window
    gain: np.ndarray  # [N] log p(whole prefix) - log p(near block), nats
    k: np.ndarray  # [N] int: distant sparsity (fewest distant tokens found sufficient)
    k_ablation: np.ndarray  # [N] int: k with the ablation ranking alone
    k_alone: np.ndarray  # [N] int: k with the restored-alone ranking alone
    reach: np.ndarray  # [N] int: distance of the farthest token of the chosen set (0 = just before the token)
    forward_tokens: int  # tokens run through the reference (the cost)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"window": self.window, "position": self.position, "gain": self.gain, "k": self.k,
                "k_ablation": self.k_ablation, "k_alone": self.k_alone, "reach": self.reach,
                "forward_tokens": np.array(self.forward_tokens)}

    @staticmethod
    def from_arrays(d: dict[str, np.ndarray]) -> Sufficiency:
        return Sufficiency(d["window"], d["position"], d["gain"], d["k"], d["k_ablation"], d["k_alone"], d["reach"],
                           int(d["forward_tokens"]))


def sizes(n: int) -> list[int]:
    """Restored-set sizes tried for ``n`` distant positions: 1..EXACT, then the ladder, ending with n."""
    out = list(range(1, min(n, EXACT) + 1))
    return out + [r for r in ladder(n) if r > out[-1]] if n > EXACT else out


class _Reader:
    def __init__(self, lm: LM, windows: torch.Tensor, window: np.ndarray, position: np.ndarray) -> None:
        self.lm, self.windows, self.window, self.position = lm, windows, window, position
        self.targets = windows[torch.from_numpy(window), torch.from_numpy(position)]
        self.tokens = 0

    def logprob(self, rows: np.ndarray, positions: np.ndarray) -> torch.Tensor:
        """log p(target of token ``rows[i]``) reading only ``positions[i]`` (sorted, equal lengths)."""
        if len(rows) == 0:
            return torch.empty(0)
        pos = torch.from_numpy(positions)
        ctx = self.windows[torch.from_numpy(self.window[rows])[:, None], pos]
        self.tokens += ctx.numel()
        return target_logprob(self.lm, ctx, pos, self.targets[torch.from_numpy(rows)])


def _k_of(reader: _Reader, order: list[np.ndarray], near_block: np.ndarray, full: torch.Tensor,
          need: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(k, reach) of every token for one ranking: the fewest of its top-ranked distant positions that,
    with the near block, bring log p within ``need`` of ``full``."""
    n_tok = len(order)
    k = np.zeros(n_tok, dtype=np.int64)
    reach = np.zeros(n_tok, dtype=np.int64)
    n = np.array([len(o) for o in order])
    open_ = np.ones(n_tok, dtype=bool)
    for r in sorted({r for m in set(n.tolist()) for r in sizes(int(m))}):
        rows = np.nonzero(open_ & (n >= r))[0]
        if len(rows) == 0:
            continue
        chosen = np.stack([order[i][:r] for i in rows])  # [b, r]
        positions = np.sort(np.concatenate([chosen, near_block[rows]], axis=1), axis=1)
        # restoring every distant position is the whole prefix: sufficient by definition
        done = np.where(n[rows] == r, True, ((full[rows] - reader.logprob(rows, positions)) <= need[rows]).numpy())
        for j in np.nonzero(done)[0]:
            i = rows[j]
            k[i], reach[i], open_[i] = r, reader.position[i] - 1 - chosen[j].min(), False
    return k, reach


def measure_sufficiency(lm: LM, windows: torch.Tensor, window: np.ndarray, position: np.ndarray, near: int,
                        ablation_top: np.ndarray | None, cfg: SufficiencyConfig) -> Sufficiency:
    """Distant sparsity of the tokens at ``(window[i], position[i])`` of ``windows [W, C]``.

    ``ablation_top [N, R]``: each token's distant positions ranked by single-position ablation effect
    (``DistantDependence.top`` at column position - 1; -1 entries are skipped); None ranks by the
    restored-alone gain only.
    """
    cfg.validate()
    window, position = np.asarray(window, dtype=np.int64), np.asarray(position, dtype=np.int64)
    if len(window) != len(position):
        raise LengenError("sufficiency: window and position must have the same length")
    if len(position) and (position.min() <= near or position.max() >= windows.shape[1]):
        raise LengenError(f"sufficiency: positions must lie in {near + 1}..{windows.shape[1] - 1} (a distant context)")
    n_tok = len(position)
    reader = _Reader(lm, windows, window, position)
    near_block = position[:, None] - near + np.arange(near)[None, :]  # [N, near]
    # whole prefix and near block: rows of equal length are batched together
    full = torch.zeros(n_tok)
    for p in np.unique(position):
        rows = np.nonzero(position == p)[0]
        full[rows] = reader.logprob(rows, np.broadcast_to(np.arange(p), (len(rows), p)).copy())
    gain = full - reader.logprob(np.arange(n_tok), near_block)
    need = (1 - cfg.share) * gain.clamp(min=0)
    # restored alone: one row of near + 1 tokens per (token, distant position)
    owner = np.concatenate([np.full(p - near, i) for i, p in enumerate(position)]) if n_tok else np.zeros(0, int)
    distant = np.concatenate([np.arange(p - near) for p in position]) if n_tok else np.zeros(0, int)
    alone = reader.logprob(owner, np.concatenate([distant[:, None], near_block[owner]], axis=1)).numpy()
    bounds = np.concatenate([[0], np.cumsum(position - near)])
    order_alone = [distant[a:b][np.argsort(-alone[a:b], kind="stable")] for a, b in zip(bounds[:-1], bounds[1:],
                                                                                          strict=True)]
    k_alone, reach_alone = _k_of(reader, order_alone, near_block, full, need)
    if ablation_top is None:
        k_abl, reach_abl = k_alone, reach_alone
    else:
        order_abl = []
        for i in range(n_tok):
            first = [int(j) for j in ablation_top[i] if 0 <= j < position[i] - near]
            seen = set(first)
            order_abl.append(np.array(first + [int(j) for j in order_alone[i] if j not in seen], dtype=np.int64))
        k_abl, reach_abl = _k_of(reader, order_abl, near_block, full, need)
    k = np.minimum(k_abl, k_alone)
    reach = np.where(k_abl <= k_alone, reach_abl, reach_alone)
    return Sufficiency(window, position, gain.numpy(), k, k_abl, k_alone, reach, reader.tokens)
