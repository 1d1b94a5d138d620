"""Step 1 of `lengen check`: how much context does each prediction need, and how far back?

Every scored token gets a context of exactly C tokens. Distance d is the position C-1-d (d = 0 is the
token just before the prediction). Two measurements per token, both from the model's log-probability
of the true next token:

**Truncation profile** (the reference): ``damage(m) = log p(x | all C) - log p(x | last m tokens)``
for a list of widths m. One forward of m tokens per token and width.

**Sufficiency set** (the estimate of which context is needed): the *local* block (the last ``local``
tokens) is always kept; the rest is cut into chunks of ``chunk`` consecutive tokens. A set of chunks is
sufficient when the local block plus those chunks, every other context token *replaced* by the token
at the same position of a donor stretch of the same data (the context keeps its length and positions;
with several donors the log-probabilities are averaged), bring the log-probability within
``need = max(tolerance, (1 - share) * gain)`` of the full context's, where ``gain`` is the full
context's gain over the local block with everything else replaced. Without donors, unkept tokens are
removed instead (the first version; see ``measure`` for why that misses dense dependence). Greedy, and
said so: chunks are ranked once by their signed log-probability when kept alone with the local block
(removal here: it only orders them), then a binary search over the ladder r = 1, 2, 3, 4, 6, 8, 12,
16, ... (r = 1 first) finds a sufficient r with an insufficient one below it, so ``k`` is rounded up to
that ladder. ``k`` counts chunks beyond the local block (k = 0: the local block suffices); ``reach`` is
the distance up to which the chosen set extends (the local block's size when k = 0).

Why not single-position ablation (``lengen diagnose``): on real text it tracks surprise, sums absolute
effects and misses redundancy (issue 19). Sufficiency is checked against truncation by construction:
a set inside the last m tokens that recovers the prediction should leave little to lose when the
context is truncated to m (``agreement`` measures how little).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lengen.check.lm import LM, target_logprob
from lengen.errors import LengenError


@dataclass
class DependenceConfig:
    local: int = 4  # tokens always kept (the short context)
    chunk: int = 8  # tokens per chunk beyond the local block
    share: float = 0.9  # share of the gain over the local block a sufficient set recovers
    tolerance: float = 0.1  # nats: a deficit this small always counts as recovered
    widths: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64, 128])
    donors: int = 3  # stretches of other data that replace the unkept context (their log-probabilities averaged)

    def validate(self, context: int) -> None:
        if self.local < 1 or self.chunk < 1:
            raise LengenError("check: local and chunk must be >= 1")
        if context <= self.local or (context - self.local) % self.chunk:
            raise LengenError(f"check: the context ({context}) minus the local block ({self.local}) must be a "
                              f"positive multiple of the chunk ({self.chunk})")
        if not 0 < self.share <= 1 or self.tolerance < 0:
            raise LengenError("check: share must be in (0, 1] and tolerance >= 0")


def ladder(n: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, 24, ... capped at and ending with n."""
    out, a = [], 1
    while a < n:
        out.append(a)
        a = a + 1 if a < 4 else (a * 3 // 2 if (a & (a - 1)) == 0 else a * 4 // 3)
    return out + [n]


@dataclass
class Dependence:
    logprob: np.ndarray  # [S] full-context log p(target)
    damage: dict[int, np.ndarray]  # width -> [S] log p(full) - log p(last `width` tokens)
    k: np.ndarray  # [S] chunks in the sufficiency set beyond the local block
    reach: np.ndarray  # [S] distance the sufficiency set extends to (tokens)
    damage_at_reach: np.ndarray  # [S] truncation damage at width `reach`
    context: int
    cfg: DependenceConfig
    forward_tokens: int = 0  # tokens run through the model (the cost)

    def to_dict(self) -> dict[str, Any]:
        return {"logprob": self.logprob.tolist(), "damage": {str(m): v.tolist() for m, v in self.damage.items()},
                "k": self.k.tolist(), "reach": self.reach.tolist(), "damage_at_reach": self.damage_at_reach.tolist(),
                "context": self.context, "forward_tokens": self.forward_tokens,
                "cfg": {"local": self.cfg.local, "chunk": self.cfg.chunk, "share": self.cfg.share,
                        "tolerance": self.cfg.tolerance, "widths": self.cfg.widths, "donors": self.cfg.donors}}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Dependence:
        return Dependence(np.asarray(d["logprob"]), {int(m): np.asarray(v) for m, v in d["damage"].items()},
                          np.asarray(d["k"]), np.asarray(d["reach"]), np.asarray(d["damage_at_reach"]),
                          int(d["context"]), DependenceConfig(**d["cfg"]), int(d["forward_tokens"]))

    @staticmethod
    def concat(parts: list[Dependence]) -> Dependence:
        first = parts[0]
        return Dependence(np.concatenate([p.logprob for p in parts]),
                          {m: np.concatenate([p.damage[m] for p in parts]) for m in first.damage},
                          np.concatenate([p.k for p in parts]), np.concatenate([p.reach for p in parts]),
                          np.concatenate([p.damage_at_reach for p in parts]), first.context, first.cfg,
                          sum(p.forward_tokens for p in parts))


class _Counter:
    def __init__(self, lm: LM) -> None:
        self.lm, self.tokens = lm, 0

    def logprob(self, ctx: torch.Tensor, target: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """log p(target) reading only ``positions [B, m]`` of each context row (ids = the positions)."""
        rows = torch.gather(ctx, 1, positions)
        self.tokens += rows.numel()
        return target_logprob(self.lm, rows, positions, target)


def _last(c: int, m: int, b: int) -> torch.Tensor:
    return torch.arange(c - m, c).expand(b, m)


def measure(lm: LM, contexts: torch.Tensor, targets: torch.Tensor, cfg: DependenceConfig,
            donors: torch.Tensor | None = None) -> Dependence:
    """Truncation profile and sufficiency set of each row of ``contexts [S, C]`` predicting ``targets [S]``.

    ``donors [S, C]`` or ``[S, D, C]``: the tokens that *replace* the context tokens a sufficiency test does not keep
    (another stretch of the same data, at the same positions). Without donors the unkept tokens are
    removed instead (kept tokens keep their position ids). Why replace: a model that averages many far
    tokens renormalizes its attention over whatever is left, so after removal one chunk of a dense
    dependency predicts as well as all of them (the dense synthetic corpus came out *sparse*); replaced
    by unrelated tokens, the unkept positions dilute the average as missing evidence should.
    """
    s, c = contexts.shape
    cfg.validate(c)
    if donors is not None:
        donors = donors[:, None] if donors.dim() == 2 else donors  # [S, D, C]
        if donors.shape[0] != s or donors.shape[2] != c:
            raise LengenError(f"check: donors {tuple(donors.shape)} must be [S, C] or [S, D, C] with the contexts' "
                              f"S, C = {s}, {c}")
    run = _Counter(lm)
    full = run.logprob(contexts, targets, _last(c, c, s))
    damage = {m: (full - run.logprob(contexts, targets, _last(c, m, s))).numpy()
              for m in sorted(set(cfg.widths) | {cfg.local}) if m < c}
    damage[c] = np.zeros(s)
    n = (c - cfg.local) // cfg.chunk
    local = torch.arange(c - cfg.local, c)
    # chunk i holds distances [local + i*chunk, local + (i+1)*chunk): positions counted from the end
    chunk_pos = torch.stack([torch.arange(c - cfg.local - (i + 1) * cfg.chunk, c - cfg.local - i * cfg.chunk)
                             for i in range(n)])  # [n, chunk]
    order = torch.zeros(s, n, dtype=torch.long)  # chunks by rank, set below for the rows that need a set

    def deficit(rows: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """log p(full) - log p(local block + the r[j] best chunks of row rows[j]), [len(rows)]."""
        keep = torch.zeros(len(rows), c, dtype=torch.bool)
        keep[:, c - cfg.local:] = True
        for j, (row, rr) in enumerate(zip(rows.tolist(), r.tolist(), strict=True)):
            keep[j, chunk_pos[order[row, :rr]].flatten()] = True
        out = torch.empty(len(rows))
        if donors is not None:
            # the whole context, unkept chunks replaced: cutting what lies beyond the farthest kept chunk
            # (cheaper) would bring back removal's renormalization for evidence beyond it
            # (several donors: the mean log-probability over them, so that a donor which happens to agree
            # with the missing evidence does not make a set look sufficient by luck)
            d = donors.shape[1]
            mixed = torch.where(keep[:, None], contexts[rows][:, None], donors[rows]).reshape(-1, c)
            lp = run.logprob(mixed, targets[rows].repeat_interleave(d), _last(c, c, len(rows) * d))
            return full[rows] - lp.view(len(rows), d).mean(1)
        # removal: rows keep the same number of chunks only within one r, so group by r
        for rr in r.unique().tolist():
            sel = torch.nonzero(r == rr).flatten()
            pos = torch.nonzero(keep[sel])[:, 1].view(len(sel), -1)  # sorted per row
            out[sel] = full[rows[sel]] - run.logprob(contexts[rows[sel]], targets[rows[sel]], pos)
        return out

    # the gain of the full context over the local block alone (the rest replaced, or removed without donors)
    gain = deficit(torch.arange(s), torch.zeros(s, dtype=torch.long)) if donors is not None \
        else torch.from_numpy(damage[cfg.local]).float()
    need = torch.clamp((1 - cfg.share) * gain, min=cfg.tolerance)
    alone = torch.cat([chunk_pos, local.expand(n, -1)], dim=1)  # [n, chunk + local], sorted
    open_rows = gain > need  # the local block alone is not enough: only these rows need a set
    ranked = torch.nonzero(open_rows).flatten()
    lp_alone = torch.zeros(s, n)
    if len(ranked):
        # the ranking only orders the chunks, so it uses removal (rows of chunk + local tokens, far cheaper
        # than full-length replaced rows); the sufficiency tests below use replacement when donors are given
        lp_alone[ranked] = run.logprob(contexts[ranked].repeat_interleave(n, 0), targets[ranked].repeat_interleave(n),
                                       alone.repeat(len(ranked), 1)).view(len(ranked), n)
    order[:] = torch.argsort(lp_alone, dim=1, descending=True, stable=True)  # best chunk kept alone first

    k, reach = _search_ladder(deficit, need, open_rows, order, n, cfg)
    at_reach = _damage_at_reach(run, contexts, targets, full, damage, reach)
    return Dependence(full.numpy(), damage, k, reach, at_reach, c, cfg, run.tokens)


def _search_ladder(deficit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], need: torch.Tensor,
                   open_rows: torch.Tensor, order: torch.Tensor, n: int,
                   cfg: DependenceConfig) -> tuple[np.ndarray, np.ndarray]:
    """k (chunks in the set) and reach (tokens back to the farthest kept chunk's end) of every row.

    Binary search over the ladder for the smallest r that is sufficient (r = n keeps everything: the full
    context, sufficient by definition, never run). Sufficiency is not strictly monotone in r, so the r
    found is *a* sufficient ladder step with an insufficient step below it, not always the smallest;
    r = 1 is tried first because most tokens stop there. ~log2(len(ladder)) forwards instead of all steps.
    """
    s = len(need)
    steps = ladder(n)
    lo = np.full(s, -1)  # index into steps: known insufficient (-1: none tried)
    hi = np.full(s, len(steps) - 1)  # known sufficient
    first = True
    while True:
        idx = torch.nonzero(open_rows & torch.from_numpy(hi - lo > 1)).flatten()
        if len(idx) == 0:
            break
        ii = idx.numpy()
        mid = np.zeros(len(ii), dtype=np.int64) if first else (lo[ii] + hi[ii]) // 2
        first = False
        r = torch.tensor([steps[m] for m in mid])
        ok = (deficit(idx, r) <= need[idx]).numpy()
        hi[ii] = np.where(ok, mid, hi[ii])
        lo[ii] = np.where(ok, lo[ii], mid)
    k = np.zeros(s, dtype=np.int64)
    farthest = np.full(s, -1, dtype=np.int64)  # index of the farthest chunk in the set
    for row in torch.nonzero(open_rows).flatten().tolist():
        k[row] = steps[hi[row]]
        farthest[row] = int(order[row, :k[row]].max())
    reach = np.where(k > 0, cfg.local + (farthest + 1) * cfg.chunk, cfg.local)
    return k, reach


def _damage_at_reach(run: _Counter, contexts: torch.Tensor, targets: torch.Tensor, full: torch.Tensor,
                     damage: dict[int, np.ndarray], reach: np.ndarray) -> np.ndarray:
    """The loss of each row truncated to its own reach (from the profile where that width was measured)."""
    c = contexts.shape[1]
    at_reach = np.zeros(len(reach))
    for m in np.unique(reach):
        rows = np.nonzero(reach == m)[0]
        sel = torch.from_numpy(rows)
        if int(m) in damage:
            at_reach[rows] = damage[int(m)][rows]
        else:
            at_reach[rows] = (full[sel] - run.logprob(contexts[sel], targets[sel], _last(c, int(m), len(rows)))).numpy()
    return at_reach


def measure_many(lm: LM, contexts: torch.Tensor, targets: torch.Tensor, cfg: DependenceConfig,
                 batch: int = 16, progress: bool = True, done: list[Dependence] | None = None,
                 save: Any = None, donors: torch.Tensor | None = None, budget_s: float | None = None,
                 minimum: int = 0) -> Dependence:
    """``measure`` in batches of ``batch`` rows, continuing after ``done`` (resume) and calling
    ``save(parts)`` after each batch. ``budget_s``: no new batch starts once this many seconds have
    passed in this call and at least ``minimum`` rows are measured (the caller reports how many were)."""
    parts = list(done or [])
    start = sum(len(p.k) for p in parts)
    bar = tqdm(total=contexts.shape[0], initial=start, desc="step 1: dependence", unit="token",
               disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    for i in range(start, contexts.shape[0], batch):
        if budget_s is not None and i >= minimum and time.perf_counter() - t0 > budget_s:
            break
        parts.append(measure(lm, contexts[i:i + batch], targets[i:i + batch], cfg,
                             None if donors is None else donors[i:i + batch]))
        bar.update(len(parts[-1].k))
        if save is not None:
            save(parts)
    bar.close()
    return Dependence.concat(parts)
