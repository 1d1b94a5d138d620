"""Step 1 of `lengen check`: how much context does each prediction need, and how far back?

Every scored token gets a context of exactly C tokens. Distance d is the position C-1-d (d = 0 is the
token just before the prediction). Two measurements per token, both from the model's log-probability
of the true next token:

**Truncation profile** (the reference): ``damage(m) = log p(x | all C) - log p(x | last m tokens)``
for a list of widths m. One forward of m tokens per token and width.

**Sufficiency set** (the estimate of which context is needed): the *local* block (the last ``local``
tokens) is always kept; the rest is cut into chunks of ``chunk`` consecutive tokens. A set of chunks is
sufficient when the local block plus those chunks alone (every other token removed; kept tokens keep
their position ids, so distances are those of the full context) bring the log-probability within
``need = max(tolerance, (1 - share) * gain)`` of the full context's, where ``gain`` is the full
context's gain over the local block alone. Greedy, and said so: chunks are ranked once by their signed
gain when kept alone with the local block (so a chunk that *lowers* p(x) goes last, and of two
redundant copies the better one is taken and the other is not needed), then the r best are tried for
r = 1, 2, 3, 4, 6, 8, 12, 16, ... until sufficient, so ``k`` is rounded up to that ladder. ``k`` counts
chunks beyond the local block (k = 0: the local block suffices); ``reach`` is the distance up to which
the chosen set extends (the local block's size when k = 0).

Why not single-position ablation (``lengen diagnose``): on real text it tracks surprise, sums absolute
effects and misses redundancy (issue 19). Sufficiency is checked against truncation by construction:
a set inside the last m tokens that recovers the prediction should leave little to lose when the
context is truncated to m (``agreement`` measures how little).
"""

from __future__ import annotations

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
                        "tolerance": self.cfg.tolerance, "widths": self.cfg.widths}}

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


def measure(lm: LM, contexts: torch.Tensor, targets: torch.Tensor, cfg: DependenceConfig) -> Dependence:
    """Truncation profile and sufficiency set of each row of ``contexts [S, C]`` predicting ``targets [S]``."""
    s, c = contexts.shape
    cfg.validate(c)
    run = _Counter(lm)
    full = run.logprob(contexts, targets, _last(c, c, s))
    damage = {m: (full - run.logprob(contexts, targets, _last(c, m, s))).numpy()
              for m in sorted(set(cfg.widths) | {cfg.local}) if m < c}
    damage[c] = np.zeros(s)
    gain = torch.from_numpy(damage[cfg.local]).float()
    need = torch.clamp((1 - cfg.share) * gain, min=cfg.tolerance)
    n = (c - cfg.local) // cfg.chunk
    local = torch.arange(c - cfg.local, c)
    # chunk i holds distances [local + i*chunk, local + (i+1)*chunk): positions counted from the end
    chunk_pos = torch.stack([torch.arange(c - cfg.local - (i + 1) * cfg.chunk, c - cfg.local - i * cfg.chunk)
                             for i in range(n)])  # [n, chunk]
    alone = torch.cat([chunk_pos, local.expand(n, -1)], dim=1)  # [n, chunk + local], sorted
    open_rows = gain > need  # the local block alone is not enough: only these rows need a set
    ranked = torch.nonzero(open_rows).flatten()
    lp_alone = torch.zeros(s, n)
    if len(ranked):
        lp_alone[ranked] = run.logprob(contexts[ranked].repeat_interleave(n, 0), targets[ranked].repeat_interleave(n),
                                       alone.repeat(len(ranked), 1)).view(len(ranked), n)
    order = torch.argsort(lp_alone, dim=1, descending=True, stable=True)  # best chunk kept alone first
    k = np.zeros(s, dtype=np.int64)
    farthest = np.full(s, -1, dtype=np.int64)  # index of the farthest chunk in the set
    for r in ladder(n):
        idx = torch.nonzero(open_rows).flatten()
        if len(idx) == 0:
            break
        chosen = order[idx, :r]  # [b, r]
        pos = torch.cat([chunk_pos[chosen].flatten(1), local.expand(len(idx), -1)], dim=1).sort(dim=1).values
        lp = run.logprob(contexts[idx], targets[idx], pos)
        done = (full[idx] - lp) <= need[idx]
        if r == n:
            done[:] = True
        for j in torch.nonzero(done).flatten().tolist():
            row = int(idx[j])
            k[row], farthest[row] = r, int(chosen[j].max())
            open_rows[row] = False
    reach = np.where(k > 0, cfg.local + (farthest + 1) * cfg.chunk, cfg.local)
    at_reach = np.zeros(s)
    for m in np.unique(reach):
        rows = np.nonzero(reach == m)[0]
        sel = torch.from_numpy(rows)
        if int(m) in damage:
            at_reach[rows] = damage[int(m)][rows]
        else:
            at_reach[rows] = (full[sel] - run.logprob(contexts[sel], targets[sel], _last(c, int(m), len(rows)))).numpy()
    return Dependence(full.numpy(), damage, k, reach, at_reach, c, cfg, run.tokens)


def measure_many(lm: LM, contexts: torch.Tensor, targets: torch.Tensor, cfg: DependenceConfig,
                 batch: int = 16, progress: bool = True, done: list[Dependence] | None = None,
                 save: Any = None) -> Dependence:
    """``measure`` in batches of ``batch`` rows, continuing after ``done`` (resume) and calling
    ``save(parts)`` after each batch."""
    parts = list(done or [])
    start = sum(len(p.k) for p in parts)
    bar = tqdm(total=contexts.shape[0], initial=start, desc="step 1: dependence", unit="token",
               disable=not progress, dynamic_ncols=True)
    for i in range(start, contexts.shape[0], batch):
        parts.append(measure(lm, contexts[i:i + batch], targets[i:i + batch], cfg))
        bar.update(len(parts[-1].k))
        if save is not None:
            save(parts)
    bar.close()
    return Dependence.concat(parts)
