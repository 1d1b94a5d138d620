"""Counterfactual-ablation estimate of which context positions a prediction depends on.

The model is any callable ``logits = f(tokens)`` on ``tokens [B, T]`` returning ``[B, T, V]`` (or only
the last position, ``[B, 1, V]``). Every row is one scored prediction: the prediction made after
reading the row's last token, scored on its ``target``. For one row the estimate runs in three steps:

1. **Screen.** Gradient x input-difference: with ``g_j`` the gradient of the target's log-probability
   with respect to the input embedding of position j, the first-order effect of replacing token
   ``x_j`` by ``r`` is ``g_j . (e(x_j) - e(r))``; its mean absolute value over the replacements orders
   the positions (one forward and one backward pass). Without an embedding module every position is
   ablated in index order, latest first.
2. **Ablate one at a time**, in screened order and in rounds of ``chunk`` positions: replace ``x_j`` by
   each of the ``replacements`` baseline tokens and take the mean absolute change of the target's
   log-probability (nats). Stop when a round adds little (see ``AblationConfig.tail``) or at
   ``max_ablations``: this is why the cost stays well below one forward pass per context position.
3. **Sufficiency sweep.** Keep only the m strongest positions, replace every other ablatable position
   by the baseline, and measure how much of the full-context prediction survives:
   ``recovered(m) = 1 - |lp_full - lp_keep_m| / |lp_full - lp_keep_none|``. The effective k is the
   smallest m with ``recovered(m) >= share``; the dependency set is those m positions.
   Ranking by single-position effects and judging by joint ablation keeps the estimate honest for
   non-additive functions (parity: flipping one bit flips the answer, keeping all bits keeps it).

Baseline tokens: the ``replacements`` most frequent tokens of the data's context (the most typical,
least informative content), skipping the token being replaced. This choice is ours; it keeps a
substitution inside the data's background, which is what "depends on" means for the planted tasks
(a noise token replaced by another noise token changes nothing; a planted symbol replaced does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lengen.errors import ConfigError

LogitFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class AblationConfig:
    replacements: int = 2  # baseline tokens tried per ablated position (cost scales with it)
    share: float = 0.9  # effective k: smallest set whose sole presence recovers this share of the effect
    min_effect: float = 0.05  # nats; a prediction whose whole context moves it less has k = 0
    chunk: int = 8  # positions ablated per round
    max_ablations: int = 64  # positions ablated one at a time at most (per scored token)
    tail: float = 0.02  # stop when a round's effects add less than this share of the effects so far
    screen: str = "gradient"  # gradient | none
    batch_rows: int = 64  # rows per forward call

    def validate(self) -> None:
        if self.replacements < 1:
            raise ConfigError(f"diagnose: replacements must be >= 1, got {self.replacements}")
        if not 0.0 < self.share <= 1.0:
            raise ConfigError(f"diagnose: share must be in (0, 1], got {self.share}")
        if self.chunk < 1 or self.max_ablations < 1 or self.batch_rows < 1:
            raise ConfigError("diagnose: chunk, max_ablations and batch_rows must be >= 1")
        if self.screen not in ("gradient", "none"):
            raise ConfigError(f"diagnose: unknown screen {self.screen!r}; known: gradient, none")


@dataclass
class DependencyEstimate:
    """Per scored row. Positions index the row's tokens; distance 0 is the row's last token."""

    k: torch.Tensor  # [N] effective k
    censored: torch.Tensor  # [N] bool: even every ablated position kept did not recover `share`
    dependencies: list[list[int]]  # the effective-k positions of each row, strongest first
    effects: torch.Tensor  # [N, T] single-position effect in nats (nan where not ablated)
    screen: torch.Tensor  # [N, T] screening score (nan where not ablatable)
    total_effect: torch.Tensor  # [N] |lp_full - lp_keep_none|, nats
    logprob: torch.Tensor  # [N] full-context log-probability of the target
    ablated: torch.Tensor  # [N] positions ablated one at a time
    ablatable: torch.Tensor  # [N] positions that could be ablated
    forward_rows: float = 0.0  # forward passes spent, in rows of length T (a backward counts as 2)
    extra: dict[str, float] = field(default_factory=dict)

    def distances(self) -> list[list[int]]:
        t = self.effects.shape[1]
        return [[t - 1 - j for j in deps] for deps in self.dependencies]


def frequent_tokens(tokens: torch.Tensor, mask: torch.Tensor | None, n: int) -> torch.Tensor:
    """The ``n`` most frequent token ids among ``tokens[mask]``, most frequent first."""
    values = tokens[mask] if mask is not None else tokens.reshape(-1)
    if values.numel() == 0:
        raise ConfigError("diagnose: no context tokens to draw baseline replacements from")
    ids, counts = torch.unique(values, return_counts=True)
    order = torch.argsort(counts, descending=True, stable=True)
    return ids[order[:n]]


def replacement_tokens(tokens: torch.Tensor, baseline: torch.Tensor, r: int) -> torch.Tensor:
    """For every position, the first ``r`` baseline tokens that differ from the token there, [N, T, r].

    ``baseline`` must hold at least ``r + 1`` ids so that ``r`` remain after skipping the token itself;
    with fewer, the list is cycled.
    """
    n, t = tokens.shape
    b = baseline.to(tokens.device)
    differs = tokens[:, :, None] != b[None, None, :]  # [N, T, nb]
    # rank of each differing baseline id among the differing ones; take ranks 0..r-1 (cycling)
    rank = torch.cumsum(differs.long(), dim=2) - 1
    count = differs.sum(dim=2, keepdim=True).clamp(min=1)
    want = torch.arange(r, device=tokens.device)[None, None, :] % count  # [N, T, r]
    hit = differs[:, :, None, :] & (rank[:, :, None, :] == want[:, :, :, None])  # [N, T, r, nb]
    out = (hit.long() * b[None, None, None, :]).sum(dim=3)
    none = ~differs.any(dim=2, keepdim=True)
    return torch.where(none.expand(n, t, r), b[0], out)


class _Scorer:
    """Target log-probabilities of many token rows, in bounded batches, with a cost counter."""

    def __init__(self, f: LogitFn, batch_rows: int) -> None:
        self.f = f
        self.batch_rows = batch_rows
        self.rows = 0.0

    def logprob(self, tokens: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``tokens [M, T]``, ``target [M]`` -> log p(target | row) at the last position, [M]."""
        out = []
        with torch.no_grad():
            for i in range(0, tokens.shape[0], self.batch_rows):
                logits = self.f(tokens[i:i + self.batch_rows])[:, -1].float()
                lp = torch.log_softmax(logits, dim=-1)
                out.append(lp.gather(1, target[i:i + self.batch_rows, None])[:, 0])
        self.rows += tokens.shape[0]
        return torch.cat(out) if out else torch.empty(0)


def gradient_screen(f: LogitFn, embedding: nn.Module, tokens: torch.Tensor, target: torch.Tensor,
                    reps: torch.Tensor, batch_rows: int) -> torch.Tensor:
    """Mean over replacements of ``|g_j . (e(x_j) - e(r))|``, [N, T] (first-order ablation effect)."""
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    scores = []
    handle = embedding.register_forward_hook(hook)
    try:
        for i in range(0, tokens.shape[0], batch_rows):
            captured.clear()
            rows, tg = tokens[i:i + batch_rows], target[i:i + batch_rows]
            with torch.enable_grad():
                logits = f(rows)[:, -1].float()
                lp = torch.log_softmax(logits, dim=-1).gather(1, tg[:, None]).sum()
                if not captured:
                    raise ConfigError("diagnose: the embedding module given for screening is never called")
                (grad,) = torch.autograd.grad(lp, captured[0])
            e_x = captured[0].detach()
            with torch.no_grad():
                r = reps[i:i + batch_rows]
                e_r = embedding(r.reshape(r.shape[0], -1)).reshape(*r.shape, -1)  # [n, T, R, d]
                s = ((e_x[:, :, None, :] - e_r) * grad[:, :, None, :]).sum(-1).abs().mean(-1)
            scores.append(s.float())
    finally:
        handle.remove()
    return torch.cat(scores)


def _sufficiency(scorer: _Scorer, row: torch.Tensor, ablated_row: torch.Tensor, ranked: torch.Tensor,
                 target: torch.Tensor, lp_full: torch.Tensor, grid: list[int]) -> list[float]:
    """|lp_full - lp| when only the ``m`` strongest positions keep their tokens, for m in ``grid``."""
    r = ablated_row.shape[1]
    variants = ablated_row.permute(1, 0)[None].repeat(len(grid), 1, 1)  # [G, R, T]
    for g, m in enumerate(grid):
        kept = ranked[:m]
        variants[g][:, kept] = row[kept]
    lp = scorer.logprob(variants.reshape(len(grid) * r, -1), target.expand(len(grid) * r))
    return (lp_full - lp.view(len(grid), r)).abs().mean(dim=1).tolist()  # type: ignore[no-any-return]


def _first_recovering(grid: list[int], drop: list[float], share: float, total: float | None = None) -> int | None:
    """Smallest m whose keep-set recovers ``share`` of the total effect (``drop`` at m = 0)."""
    total = drop[0] if total is None else total
    for m, d in zip(grid, drop, strict=True):
        if 1.0 - d / total >= share:
            return m
    return None


def _keep_grid(n: int) -> list[int]:
    """Sizes m tried by the sufficiency sweep: every m up to 16, then steps of about 20%."""
    grid = list(range(0, min(n, 16) + 1))
    m = 16
    while m < n:
        m = min(n, max(m + 1, int(math.ceil(m * 1.2))))
        grid.append(m)
    return grid


def estimate_dependencies(
    f: LogitFn,
    tokens: torch.Tensor,
    target: torch.Tensor,
    ablatable: torch.Tensor,
    baseline: torch.Tensor,
    cfg: AblationConfig | None = None,
    embedding: nn.Module | None = None,
) -> DependencyEstimate:
    """Estimate every row's dependency set; see the module docstring for the method.

    ``tokens [N, T]``: each row's prediction is the one after its last token, scored on ``target [N]``.
    ``ablatable [N, T]``: positions that may be replaced (format tokens that are the same in every
    sample, padding and the like should be False). ``baseline``: candidate replacement ids, most
    typical first (see ``frequent_tokens``), at least ``cfg.replacements + 1`` of them.
    """
    cfg = cfg or AblationConfig()
    cfg.validate()
    if tokens.dim() != 2 or target.shape != tokens.shape[:1] or ablatable.shape != tokens.shape:
        raise ConfigError("diagnose: tokens must be [N, T], target [N] and ablatable [N, T]")
    n, t = tokens.shape
    r = cfg.replacements
    scorer = _Scorer(f, cfg.batch_rows)
    reps = replacement_tokens(tokens, baseline, r)  # [N, T, R]
    lp0 = scorer.logprob(tokens, target)

    # 1. screen
    if cfg.screen == "gradient" and embedding is not None:
        screen = gradient_screen(f, embedding, tokens, target, reps, cfg.batch_rows)
        scorer.rows += 2 * n  # the forward above plus a backward (about twice a forward)
    else:
        screen = torch.arange(t, dtype=torch.float32).expand(n, t).clone()  # latest first
    screen = screen.masked_fill(~ablatable, float("nan"))
    order = torch.argsort(torch.nan_to_num(screen, nan=-math.inf), dim=1, descending=True, stable=True)
    n_ablatable = ablatable.sum(dim=1)

    # 2. single-position ablation in rounds; with an uninformative order (no screen) go to the limit
    informed = cfg.screen == "gradient" and embedding is not None
    effects = torch.full((n, t), float("nan"))
    done = torch.zeros(n, dtype=torch.long)
    limit = n_ablatable.clamp(max=cfg.max_ablations)
    active = limit > 0
    while bool(active.any()):
        rows = torch.nonzero(active)[:, 0]
        width = min(cfg.chunk, int((limit[rows] - done[rows]).max()))
        offsets = done[rows, None] + torch.arange(width)[None, :]  # [n_a, w]
        valid = offsets < limit[rows, None]
        pos = torch.gather(order[rows], 1, offsets.clamp(max=t - 1))  # [n_a, w]
        variants = tokens[rows][:, None, None, :].expand(-1, width, r, t).clone()  # [n_a, w, R, T]
        rep = torch.gather(reps[rows], 1, pos[:, :, None].expand(-1, -1, r))  # [n_a, w, R]
        variants.scatter_(3, pos[:, :, None, None].expand(-1, -1, r, 1), rep[..., None])
        keep = valid[:, :, None].expand(-1, -1, r)
        lp = torch.full(keep.shape, float("nan"))
        tg = target[rows][:, None, None].expand(-1, width, r)
        lp[keep] = scorer.logprob(variants[keep], tg[keep])
        eff = (lp0[rows][:, None, None] - lp).abs().mean(dim=2)  # [n_a, w], nan where invalid
        for a, i in enumerate(rows.tolist()):
            m = int(valid[a].sum())
            before = float(torch.nansum(effects[i]))
            effects[i, pos[a, :m]] = eff[a, :m]
            done[i] += m
            added, largest = float(eff[a, :m].sum()), float(eff[a, :m].max())
            faded = largest < cfg.min_effect or added < cfg.tail * before
            if done[i] >= limit[i] or (informed and faded):
                active[i] = False

    # 3. sufficiency sweep over the strongest positions
    rank_key = torch.nan_to_num(effects, nan=-1.0) + 1e-9 * torch.nan_to_num(screen, nan=0.0).clamp(max=1e6)
    ranked = torch.argsort(rank_key, dim=1, descending=True, stable=True)
    k = torch.zeros(n, dtype=torch.long)
    censored = torch.zeros(n, dtype=torch.bool)
    total = torch.zeros(n)
    deps: list[list[int]] = [[] for _ in range(n)]
    base_rows = torch.where(ablatable[:, :, None], reps, tokens[:, :, None])  # everything ablated
    for i in range(n):
        evaluated = int(done[i])
        if evaluated == 0:
            continue
        # keep-sets up to the significant positions, plus all ablated ones (to tell censoring apart)
        significant = int((torch.nan_to_num(effects[i], nan=0.0) >= cfg.min_effect).sum())
        grid = sorted(set(_keep_grid(significant)) | {evaluated})
        drop = _sufficiency(scorer, tokens[i], base_rows[i], ranked[i], target[i], lp0[i], grid)
        total[i] = drop[0]
        if drop[0] < cfg.min_effect:
            continue  # the context barely matters: k = 0
        m = _first_recovering(grid, drop, cfg.share)
        if m == evaluated and evaluated > significant + 1:  # the weak positions matter jointly: refine
            grid = _keep_grid(evaluated)[significant + 1:]
            refined = _sufficiency(scorer, tokens[i], base_rows[i], ranked[i], target[i], lp0[i], grid)
            m = _first_recovering(grid, refined, cfg.share, drop[0])
        if m is None:
            m, censored[i] = evaluated, True
        k[i] = m
        deps[i] = ranked[i, :m].tolist()
    return DependencyEstimate(
        k=k, censored=censored, dependencies=deps, effects=effects, screen=screen, total_effect=total,
        logprob=lp0, ablated=done, ablatable=n_ablatable, forward_rows=scorer.rows,
    )


def truncation_profile(f: LogitFn, tokens: torch.Tensor, target: torch.Tensor, lengths: list[int],
                       batch_rows: int = 64) -> dict[int, float]:
    """Mean loss (nats) of the last-position prediction when only the last m tokens are kept."""
    scorer = _Scorer(f, batch_rows)
    out = {}
    for m in sorted({min(int(m), tokens.shape[1]) for m in lengths if m >= 1}):
        out[m] = float(-scorer.logprob(tokens[:, -m:], target).mean())
    return out


def truncation_grid(context: int) -> list[int]:
    """1, 2, 4, ... up to and including ``context``."""
    grid, m = [], 1
    while m < context:
        grid.append(m)
        m *= 2
    return [*grid, context]
