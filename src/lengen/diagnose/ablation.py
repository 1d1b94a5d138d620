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
3. **Effective k**: effects below ``min_effect`` count as zero; k is the smallest number of positions
   whose effects add up to ``share`` of the sum of all measured effects, and the dependency set is
   those positions. Zero total effect means k = 0 (the prediction ignores its context).

Why single-position effects and not "keep only the top m, ablate the rest": for parity the all-ablated
context often yields the same answer as the full one (zero planted bits has parity 0), so a
sufficiency curve measured against it is degenerate. The price: redundant context (two copies of one
fact, neither needed alone) is invisible to single-position ablation and lowers k.

For text, ``estimate_shared_rows`` is the cheaper alternative to steps 1-2: one window scores its last
S predictions, every position is ablated once, and that one pass serves all S predictions (no screen).

Baseline tokens (``choose_baseline``): among the most frequent context tokens, those whose substitution
disturbs predictions least on a pilot sample. This choice is ours. It keeps a substitution inside the
data's background, which is what "depends on" means for the planted tasks (a noise token replaced by
another noise token changes nothing; a planted symbol replaced does), and for text it picks common,
low-information tokens.
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
        if not 0.0 <= self.min_effect < float("inf"):
            raise ConfigError(f"diagnose: min_effect must be a finite number >= 0 (nats), got {self.min_effect}")
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
    total_effect: torch.Tensor  # [N] sum of the significant single-position effects, nats
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


def choose_baseline(f: LogitFn, tokens: torch.Tensor, target: torch.Tensor, ablatable: torch.Tensor,
                    n: int, candidates: int = 8, pilot_rows: int = 32, seed: int = 0,
                    batch_rows: int = 64) -> tuple[torch.Tensor, dict[int, float]]:
    """The ``n`` baseline tokens that disturb predictions least when substituted, most benign first.

    Among the ``candidates`` most frequent context tokens, each is written into one random ablatable
    position of each of ``pilot_rows`` rows, and the mean |change| of the target's log-probability is
    measured. Frequent alone is not enough: in a planted task with many planted symbols, a symbol can
    be among the most frequent tokens, and writing it into a background position changes the answer.
    Returns the chosen ids and every candidate's measured disturbance (nats).
    """
    pool = frequent_tokens(tokens, ablatable, max(candidates, n))
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(tokens.shape[0], generator=g)[:pilot_rows]
    rows = rows[ablatable[rows].any(dim=1)]
    if len(rows) == 0 or len(pool) <= n:
        return pool[:n], {}
    weights = ablatable[rows].float()
    pos = torch.multinomial(weights, 1, generator=g)[:, 0]  # one ablatable position per pilot row
    scorer = _Scorer(f, batch_rows)
    base = scorer.logprob(tokens[rows], target[rows])
    variants = tokens[rows][None].repeat(len(pool), 1, 1)  # [C, P, T]
    variants[:, torch.arange(len(rows)), pos] = pool[:, None]
    lp = scorer.logprob(variants.reshape(-1, tokens.shape[1]), target[rows].repeat(len(pool))).view(len(pool), -1)
    same = tokens[rows, pos][None, :] == pool[:, None]  # substituting a token by itself says nothing
    change = torch.where(same, torch.nan, (lp - base[None]).abs())
    # a candidate that only met itself in the pilot was not measured: it goes last, not first
    disturbance = torch.nan_to_num(torch.nanmean(change, dim=1), nan=math.inf)
    order = torch.argsort(disturbance, stable=True)
    return pool[order[:n]], {int(pool[i]): float(disturbance[i]) for i in range(len(pool))}


def substitution_table(vocab_size: int, baseline: torch.Tensor, r: int,
                       classes: list[list[int]] | None = None) -> torch.Tensor:
    """``table[v]``: the ``r`` tokens that replace token v, [vocab, r].

    A token in one of ``classes`` with other members is replaced by those members (cycled to ``r``):
    a planted symbol by another symbol, a background token by another background token. Any other
    token is replaced by the first ``r`` baseline tokens that differ from it (cycled when fewer).
    """
    table = torch.zeros(vocab_size, r, dtype=torch.long)
    cls_of = {v: c for c in (classes or []) if len(c) > 1 for v in c}
    base = [int(b) for b in baseline]
    for v in range(vocab_size):
        pool = [u for u in cls_of[v] if u != v] if v in cls_of else [u for u in base if u != v]
        if not pool:
            pool = base or [v]
        table[v] = torch.tensor([pool[i % len(pool)] for i in range(r)])
    return table


def replacement_tokens(tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Replacement candidates of every position, [N, T, r]."""
    return table.to(tokens.device)[tokens]


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


def _ablate_in_rounds(scorer: _Scorer, tokens: torch.Tensor, target: torch.Tensor, reps: torch.Tensor,
                      order: torch.Tensor, lp0: torch.Tensor, limit: torch.Tensor, informed: bool,
                      cfg: AblationConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 2: ablate each row's positions in screened ``order``, ``cfg.chunk`` at a time, until a round
    adds little (``informed``: a screen ordered them) or ``limit`` positions are done. Returns the
    effects [N, T] (nan: not ablated) and the number of positions ablated per row."""
    n, t = tokens.shape
    r = cfg.replacements
    effects = torch.full((n, t), float("nan"))
    done = torch.zeros(n, dtype=torch.long)
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
            # a round that adds nothing ends the search once something was found, or after two rounds
            faded = (largest < cfg.min_effect and (before > 0 or done[i] >= 2 * cfg.chunk)) or (
                before > 0 and added < cfg.tail * before)
            if done[i] >= limit[i] or (informed and faded):
                active[i] = False
    return effects, done


def estimate_dependencies(
    f: LogitFn,
    tokens: torch.Tensor,
    target: torch.Tensor,
    ablatable: torch.Tensor,
    baseline: torch.Tensor,
    cfg: AblationConfig | None = None,
    embedding: nn.Module | None = None,
    classes: list[list[int]] | None = None,
) -> DependencyEstimate:
    """Estimate every row's dependency set; see the module docstring for the method.

    ``tokens [N, T]``: each row's prediction is the one after its last token, scored on ``target [N]``.
    ``ablatable [N, T]``: positions that may be replaced (format tokens that are the same in every
    sample, padding and the like should be False). ``baseline``: replacement ids, most benign first
    (see ``choose_baseline``), at least ``cfg.replacements + 1`` of them. ``classes``: groups of
    interchangeable token ids (a substitution stays inside its group; see ``substitution_table``).
    """
    cfg = cfg or AblationConfig()
    cfg.validate()
    if tokens.dim() != 2 or target.shape != tokens.shape[:1] or ablatable.shape != tokens.shape:
        raise ConfigError("diagnose: tokens must be [N, T], target [N] and ablatable [N, T]")
    n, t = tokens.shape
    r = cfg.replacements
    scorer = _Scorer(f, cfg.batch_rows)
    vocab = int(max(int(tokens.max()), int(baseline.max()), *(max(c) for c in classes or [[0]]))) + 1
    reps = replacement_tokens(tokens, substitution_table(vocab, baseline, r, classes))  # [N, T, R]
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
    limit = n_ablatable.clamp(max=cfg.max_ablations)
    effects, done = _ablate_in_rounds(scorer, tokens, target, reps, order, lp0, limit, informed, cfg)

    # 3. effective k: the fewest positions whose effects add up to `share` of all measured effects
    k, ranked, total = effective_k(effects, cfg)
    # censored: the search stopped at its limit while still finding effects (more may lie beyond)
    last = torch.gather(torch.nan_to_num(effects, nan=0.0), 1,
                        torch.gather(order, 1, (done - 1).clamp(min=0)[:, None]))[:, 0]
    censored = (done >= cfg.max_ablations) & (done < n_ablatable) & (last >= cfg.min_effect)
    deps = [ranked[i, : int(k[i])].tolist() for i in range(n)]
    return DependencyEstimate(
        k=k, censored=censored, dependencies=deps, effects=effects, screen=screen, total_effect=total,
        logprob=lp0, ablated=done, ablatable=n_ablatable, forward_rows=scorer.rows,
    )


def effective_k(effects: torch.Tensor, cfg: AblationConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of ``effects [N, T]`` (nan: not ablated): k, positions ranked by effect, total effect.

    Effects below ``cfg.min_effect`` count as zero; k is the fewest positions whose effects add up to
    ``cfg.share`` of the total; k = 0 when the total is zero.
    """
    significant = torch.nan_to_num(effects, nan=0.0)
    significant = torch.where(significant >= cfg.min_effect, significant, torch.zeros(()))
    rank_key = significant + 1e-6 * torch.nan_to_num(effects, nan=-1.0)  # ties: larger raw effect first
    ranked = torch.argsort(rank_key, dim=1, descending=True, stable=True)
    sorted_eff = torch.gather(significant, 1, ranked)
    total = sorted_eff.sum(dim=1)
    cumulative = torch.cumsum(sorted_eff, dim=1)
    k = (cumulative < cfg.share * total[:, None] - 1e-9).sum(dim=1) + 1
    k = torch.where(total > 0, k, torch.zeros_like(k))
    return k, ranked, total


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
