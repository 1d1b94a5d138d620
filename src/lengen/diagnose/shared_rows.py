"""Exhaustive single-position ablation shared by many scored predictions of one row (text).

The cheaper alternative to ``estimate_dependencies``' screen and rounds for text: one window scores its
last S predictions, every position is ablated once, and that one pass serves all S predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lengen.diagnose.ablation import AblationConfig, DependencyEstimate, effective_k, substitution_table
from lengen.errors import ConfigError

KeepLogitFn = Callable[[torch.Tensor, int], torch.Tensor]
SuffixLogitFn = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]


@dataclass
class _Spent:
    rows: float = 0.0  # forward passes of a whole row, fractional when a cached prefix was reused


def _logprobs(f_keep: KeepLogitFn, x: torch.Tensor, y: torch.Tensor, s: int, batch_rows: int) -> torch.Tensor:
    """Log-probabilities of ``y [M, S]`` after the last S positions of ``x [M, T]``, [M, S]."""
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_rows):
            lg = torch.log_softmax(f_keep(x[i:i + batch_rows], s)[:, -s:].float(), dim=-1)
            out.append(lg.gather(2, y[i:i + batch_rows, :, None])[..., 0])
    return torch.cat(out)


def _suffix_logprobs(f_suffix: SuffixLogitFn, row: torch.Tensor, flat: torch.Tensor, first: torch.Tensor,
                     target: torch.Tensor, lp0: torch.Tensor, batch_rows: int, spent: _Spent) -> torch.Tensor:
    """Like ``_logprobs`` for the variants ``flat`` of one ``row`` [1, T], reusing the clean row's cache
    before each batch's first changed position (``first``, ascending); [M, S]."""
    s, t = target.shape[0], row.shape[1]
    parts = []
    spent.rows += 1  # the clean row's pass that fills the cache
    with torch.no_grad():
        for lo in range(0, flat.shape[0], batch_rows):
            start = int(first[lo])
            lg = torch.log_softmax(f_suffix(row, flat[lo:lo + batch_rows], start, s).float(), -1)
            m = lg.shape[1]  # scored positions at or after `start`; earlier ones cannot change
            part = lp0[None].repeat(lg.shape[0], 1)
            part[:, s - m:] = lg.gather(2, target[s - m:][None, :, None].expand(lg.shape[0], -1, -1))[..., 0]
            parts.append(part)
            spent.rows += lg.shape[0] * (t - start) / t
    return torch.cat(parts)


def _per_prediction(values: torch.Tensor, fill: float | bool, s: int) -> torch.Tensor:
    """[N, S, T] by ablated position -> [N * S, T] by distance: the prediction at position
    p = T-S+q reads positions 0..p, shifted so that p lands on index T-1 (``fill`` before its start)."""
    n, _, t = values.shape
    out = torch.full((n * s, t), fill, dtype=values.dtype)
    for q in range(s):
        p = t - s + q
        out.view(n, s, t)[:, q, t - 1 - p:] = values[:, q, : p + 1]
    return out


def estimate_shared_rows(
    f_keep: KeepLogitFn,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    ablatable: torch.Tensor,
    baseline: torch.Tensor,
    cfg: AblationConfig | None = None,
    f_suffix: SuffixLogitFn | None = None,
) -> DependencyEstimate:
    """Exhaustive single-position ablation shared by many scored predictions of one row.

    ``tokens [N, T]``; ``targets [N, S]``: the tokens that follow positions ``T-S .. T-1`` (each row
    scores its last S predictions). ``f_keep(tokens, S)`` returns the logits of the last S positions,
    ``[B, S, V]``. Every ablatable position j of a row is replaced (by ``cfg.replacements`` baseline
    tokens) in one forward pass each, and that one pass measures the effect of j on all S predictions
    at once, so a scored token costs ``T * replacements / S`` forward passes of a row (plus 1/S for the
    clean pass): well below one forward pass per context position without any screening, and with no
    screening misses. The output has one row per scored prediction (N*S, row-major); its positions are
    shifted so the prediction's own last context token sits at index T-1 (distance 0), and the
    positions before its row's start are nan (not part of its context).

    ``f_suffix`` (optional, see ``ModelHandle.suffix_logits``): a model with a key/value cache reuses
    the clean row's cache for the unchanged prefix before the first ablated position of a batch, so
    ablating position j costs about (T - j) / T of a forward pass; ``forward_rows`` counts that.
    """
    cfg = cfg or AblationConfig()
    cfg.validate()
    n, t = tokens.shape
    s = targets.shape[1]
    if targets.dim() != 2 or targets.shape[0] != n or not 1 <= s <= t or ablatable.shape != tokens.shape:
        raise ConfigError("diagnose: shared rows need tokens [N, T], targets [N, S] with S <= T, ablatable [N, T]")
    r = cfg.replacements
    vocab = int(max(int(tokens.max()), int(baseline.max()))) + 1
    table = substitution_table(vocab, baseline, r)
    spent = _Spent()
    lp0 = _logprobs(f_keep, tokens, targets, s, cfg.batch_rows)  # [N, S]
    spent.rows += n
    effects = torch.full((n, s, t), float("nan"))  # [row, scored prediction, ablated position j]
    for i in range(n):
        js = torch.nonzero(ablatable[i])[:, 0]
        if len(js) == 0:
            continue
        reps = table[tokens[i, js]]  # [J, R]
        variants = tokens[i][None, None, :].repeat(len(js), r, 1)  # [J, R, T]
        variants[torch.arange(len(js)), :, js] = reps
        flat = variants.reshape(-1, t)
        if f_suffix is None:
            lp = _logprobs(f_keep, flat, targets[i][None].expand(len(js) * r, -1), s, cfg.batch_rows)
            lp = lp.view(len(js), r, s)
            spent.rows += len(js) * r
        else:  # js ascending: each variant's first changed position
            lp = _suffix_logprobs(f_suffix, tokens[i:i + 1], flat, js.repeat_interleave(r), targets[i], lp0[i],
                                  cfg.batch_rows, spent).view(len(js), r, s)
        eff = (lp - lp0[i][None, None, :]).abs().mean(dim=1)  # [J, S]
        effects[i][:, js] = eff.T
    shifted = _per_prediction(effects, float("nan"), s)  # one row per scored prediction
    k, ranked, total = effective_k(shifted, cfg)
    ablatable_shifted = _per_prediction(ablatable[:, None, :].expand(n, s, t), False, s)
    done = (~torch.isnan(shifted)).sum(dim=1)
    deps = [ranked[i, : int(k[i])].tolist() for i in range(n * s)]
    return DependencyEstimate(
        k=k, censored=torch.zeros(n * s, dtype=torch.bool), dependencies=deps, effects=shifted,
        screen=torch.full((n * s, t), float("nan")), total_effect=total, logprob=lp0.reshape(-1),
        ablated=done, ablatable=ablatable_shifted.sum(dim=1), forward_rows=spent.rows,
        extra={"scored_per_row": float(s)},
    )
