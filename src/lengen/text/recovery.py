"""Outcome of issue 14: the share of the reference's distant-context gain that a short-trained model
recovers when it reads the long context, by distant-sparsity bucket, with controls.

For a measured token i (``lengen.text.sufficiency``: the reference gains >= threshold from the context
beyond ``near``), a model M's distant gain is ``g_M(i) = loss_M(last near tokens) - loss_M(whole window)``
(its own in-distribution read against its long read) and the reference's is ``g_ref(i)``, computed the
same way. **Gain recovered** of a set of tokens = ``sum g_M / sum g_ref``: 1 = M uses the distant
context as well as the reference, 0 = not at all, negative = the long context hurts M.

Controls: a token's bucket is confounded with where it sits and how hard it is, so the **stratified**
share averages the per-token share ``g_M / g_ref`` (bounded: ``g_ref >= threshold``) within strata of
position bin x reference-loss bin x token-frequency bin, then over the strata in which every bucket has
tokens, weighted by the strata's token counts. Intervals: 95% percentile bootstrap over **windows**
(tokens of one window are not independent); with several seeds of a scheme, each bootstrap draw
averages the seeds' shares.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BOOTSTRAP = 400
LOSS_BINS = 2  # reference-loss bins (medians of the measured tokens)
FREQ_BINS = 2  # token-frequency bins
MINUS = " minus "  # in a bucket name: the paired difference row (sparsest minus densest bucket)


@dataclass
class Tokens:
    """The measured tokens: one entry each."""

    window: np.ndarray  # [N] int
    position: np.ndarray  # [N] int
    bucket: np.ndarray  # [N] int: bucket index (0 = sparsest)
    ref_gain: np.ndarray  # [N] g_ref
    ref_loss: np.ndarray  # [N] the reference's loss reading the whole window
    frequency: np.ndarray  # [N] the token's count in the training split (any monotone frequency works)


def sparsity_buckets(k: np.ndarray, few: int) -> tuple[np.ndarray, list[str]]:
    """Bucket per sufficiency k (>= 1): 0 = one distant token suffices, 1 = 2..few, 2 = more."""
    names = ["k=1", f"k=2-{few}" if few > 2 else "k=2", f">{few}"]
    return np.where(k <= 1, 0, np.where(k <= few, 1, 2)), names


def position_bins(position: np.ndarray, near: int) -> np.ndarray:
    """0: positions near+1 .. 2(near+1)-1, 1: up to 4(near+1)-1, then doubling."""
    return np.floor(np.log2(np.maximum(position, near + 1) / (near + 1))).astype(np.int64)


def _quantile_bins(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.quantile(x, np.linspace(0, 1, n + 1)[1:-1])
    return np.searchsorted(edges, x, side="right").astype(np.int64)


def strata(tok: Tokens, near: int) -> np.ndarray:
    """Stratum id per token: position bin x reference-loss bin x frequency bin."""
    pos = position_bins(tok.position, near)
    loss = _quantile_bins(tok.ref_loss, LOSS_BINS)
    freq = _quantile_bins(np.log1p(tok.frequency), FREQ_BINS)
    return (pos * LOSS_BINS + loss) * FREQ_BINS + freq


def raw_share(g_model: np.ndarray, g_ref: np.ndarray, sel: np.ndarray) -> float:
    den = float(g_ref[sel].sum())
    return float(g_model[sel].sum()) / den if sel.any() and den > 0 else float("nan")


def stratified_share(ratio: np.ndarray, bucket: np.ndarray, stratum: np.ndarray, b: int,
                     buckets: Sequence[int]) -> float:
    """Mean per-token share of bucket ``b`` within each stratum shared by every bucket in ``buckets``,
    averaged with the strata's token counts (all buckets together) as weights."""
    total, weight = 0.0, 0
    for s in np.unique(stratum):
        in_s = stratum == s
        if not all((in_s & (bucket == c)).any() for c in buckets):
            continue
        n = int(in_s.sum())
        total += n * float(ratio[in_s & (bucket == b)].mean())
        weight += n
    return total / weight if weight else float("nan")


def _shares(g_models: list[np.ndarray], tok: Tokens, stratum: np.ndarray, idx: np.ndarray,
            present: list[int]) -> dict[str, np.ndarray]:
    """Raw and stratified share per bucket (columns) for the tokens ``idx``, seeds averaged."""
    bucket, g_ref = tok.bucket[idx], tok.ref_gain[idx]
    raw = np.array([[raw_share(g[idx], g_ref, bucket == b) for b in present] for g in g_models])
    strat = np.array([[stratified_share(g[idx] / g_ref, bucket, stratum[idx], b, present) for b in present]
                      for g in g_models])
    allb = np.array([raw_share(g[idx], g_ref, np.ones(len(idx), dtype=bool)) for g in g_models])
    with warnings.catch_warnings():  # a bucket missing from a bootstrap draw is nan in every seed
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"raw": np.nanmean(raw, 0), "stratified": np.nanmean(strat, 0), "all": np.array([np.nanmean(allb)])}


def recovery_rows(models: dict[str, list[np.ndarray]], tok: Tokens, names: list[str], near: int,
                  measure: str, seed: int = 0, bootstrap: int = BOOTSTRAP) -> list[dict[str, Any]]:
    """Tidy rows: per model (its seeds' ``g_M`` arrays over the measured tokens) and bucket, the raw and
    stratified gain recovered with 95% window-bootstrap intervals; then, with two buckets or more, the
    sparsest minus the densest bucket (``difference_name``) with a paired interval."""
    present = [b for b in range(len(names)) if (tok.bucket == b).any()]
    stratum = strata(tok, near)
    windows = np.unique(tok.window)
    by_window = {int(w): np.nonzero(tok.window == w)[0] for w in windows}
    rng = np.random.default_rng(seed)
    draws = [np.concatenate([by_window[int(w)] for w in rng.choice(windows, len(windows))])
             for _ in range(bootstrap)]
    rows = []
    everything = np.arange(len(tok.window))
    for label, g_models in models.items():
        point = _shares(g_models, tok, stratum, everything, present)
        boots = [_shares(g_models, tok, stratum, d, present) for d in draws]
        for j, b in enumerate(present + [-1]):
            row: dict[str, Any] = {"model": label, "measure": measure, "bucket": names[b] if b >= 0 else "all",
                                   "tokens": int((tok.bucket == b).sum()) if b >= 0 else len(tok.window),
                                   "windows": len(np.unique(tok.window[tok.bucket == b])) if b >= 0 else len(windows),
                                   "seeds": len(g_models)}
            for kind in ("raw", "stratified"):
                if b < 0 and kind == "stratified":
                    row.update({f"{kind}": float("nan"), f"{kind}_lo": float("nan"), f"{kind}_hi": float("nan")})
                    continue
                key, col = ("all", 0) if b < 0 else (kind, j)
                vals = np.array([bt[key][col] for bt in boots])
                vals = vals if row["windows"] >= 2 else vals[:0]  # one window: no interval
                row[kind] = float(point[key][col])
                row[f"{kind}_lo"], row[f"{kind}_hi"] = _interval(vals)
            rows.append(row)
        if len(present) >= 2:
            rows.append(_difference_row(label, measure, len(g_models), tok, names, present, point, boots))
    return rows


def difference_name(names: Sequence[str], present: Sequence[int]) -> str:
    """The bucket name of the paired difference row: sparsest present bucket minus densest."""
    return f"{names[present[0]]}{MINUS}{names[present[-1]]}"


def is_difference(bucket: str) -> bool:
    return MINUS in bucket


def _difference_row(label: str, measure: str, seeds: int, tok: Tokens, names: Sequence[str], present: list[int],
                    point: dict[str, np.ndarray], boots: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Sparsest minus densest bucket's share, its interval from the same window draws (paired: a
    window's difficulty moves both buckets of a draw together, so this interval is narrower than the two
    buckets' intervals side by side). The sparsity effect of the theory is a positive difference."""
    both = np.isin(tok.bucket, [present[0], present[-1]])
    row: dict[str, Any] = {"model": label, "measure": measure, "bucket": difference_name(names, present),
                           "tokens": int(both.sum()), "windows": len(np.unique(tok.window[both])), "seeds": seeds}
    for kind in ("raw", "stratified"):
        vals = np.array([bt[kind][0] - bt[kind][-1] for bt in boots])
        vals = vals if row["windows"] >= 2 else vals[:0]  # one window: no interval, as for the buckets
        row[kind] = float(point[kind][0] - point[kind][-1])
        row[f"{kind}_lo"], row[f"{kind}_hi"] = _interval(vals)
    return row


def _interval(draws: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the finite bootstrap draws (nan, nan without any)."""
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return float("nan"), float("nan")
    return float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))
