"""How many *distant* tokens each token of a text depends on, measured with a long-context reference model.

A model trained on windows of L tokens never reads more than ``near = L - 1`` tokens of context. For a
token at position p of a longer window, the *distant* context is every token farther back than that:
positions j <= p - 1 - near (distance >= near, where distance 0 is the token just before p). Whether
the short model keeps its loss on token p should depend on how much, and on how many of, those
distant tokens the prediction needs (the sparsity thesis, science.md).

The need is measured with a *reference* model that was trained on the whole window (it has seen every
distance), by exhaustive single-position ablation (``lengen.diagnose.ablation.estimate_shared_rows``):
each distant position of a window is replaced by baseline tokens in one forward pass, which measures
its effect on every later prediction at once. A prediction's *distant k* is its effective k computed
over its distant positions only (the fewest distant positions that carry ``share`` of its distant
effect; single effects below ``min_effect`` nats count as zero), so k = 0 means no single distant
token moves the reference's log-probability of the token by ``min_effect``.

The single-position view inherits the diagnosis's blind spot: information repeated in several distant
places (neither copy needed alone) looks like no dependence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from lengen.diagnose.ablation import AblationConfig, choose_baseline, effective_k
from lengen.diagnose.shared_rows import estimate_shared_rows
from lengen.diagnose.sources import ModelHandle
from lengen.errors import LengenError

TOP = 32  # distant positions kept per token, ranked by single-position ablation effect


@dataclass
class DistantDependence:
    """Per token of ``windows [W, C]``; column p - 1 is token p (predicted from tokens 0..p-1), as in
    ``lengen.text.length_eval.token_losses``. Tokens with no distant context (p <= near) hold k = -1."""

    k: np.ndarray  # [W, C-1] int: distant k (-1: not scored)
    effect: np.ndarray  # [W, C-1] float: sum of the significant distant single-position effects, nats
    near: int  # tokens of context that are not distant
    baseline: list[int]  # the replacement tokens used
    forward_rows: float  # cost in forward passes of a whole window
    # [W, C-1, TOP] int: per token, its distant positions (in the window) by single-position ablation effect,
    # largest first, -1 past the distant ones (``lengen.text.sufficiency`` tries them in this order)
    top: np.ndarray | None = None

    def scored(self) -> np.ndarray:
        return self.k >= 0


def distant_dependence(handle: ModelHandle, windows: torch.Tensor, near: int, cfg: AblationConfig | None = None,
                       baseline: torch.Tensor | None = None, progress: bool = False) -> DistantDependence:
    """Distant k of every token of every window beyond the first ``near`` (see the module docstring)."""
    cfg = cfg or AblationConfig()
    cfg.validate()
    w, c = windows.shape
    t = c - 1  # the model reads tokens 0..C-2 and predicts tokens 1..C-1
    s = t - near  # scored predictions per window: tokens near+1 .. C-1
    if near < 1 or s < 1:
        raise LengenError(f"distant dependence needs windows longer than near + 1 = {near + 1} tokens, got {c}")
    handle.check_length(t, "a reference window")
    tokens, targets = windows[:, :t], windows[:, t - s + 1:]
    ablatable = torch.zeros(w, t, dtype=torch.bool)
    ablatable[:, : t - near] = True  # distant for at least the last prediction
    if baseline is None:
        baseline, _ = choose_baseline(handle.logits, tokens, windows[:, t], ablatable, cfg.replacements,
                                      batch_rows=cfg.batch_rows)
    k = np.full((w, t), -1, dtype=np.int64)
    effect = np.zeros((w, t))
    top = np.full((w, t, TOP), -1, dtype=np.int64)
    rows = 0.0
    for i in tqdm(range(w), desc="distant dependence", unit="window", disable=not progress, dynamic_ncols=True):
        est = estimate_shared_rows(handle.last_logits, tokens[i:i + 1], targets[i:i + 1], ablatable[i:i + 1],
                                   baseline, cfg, handle.suffix_logits)
        rows += est.forward_rows
        distant = est.effects.clone()  # [S, T], shifted: index T-1 is distance 0
        distant[:, t - near:] = float("nan")  # distances < near are near context
        kk, ranked, total = effective_k(distant, cfg)
        k[i, t - s:] = kk.numpy()
        effect[i, t - s:] = total.numpy()
        # shifted index j of the prediction of token p (row q, p = t - s + 1 + q) is window position p - t + j
        first = ranked[:, :TOP].numpy()
        pos = first + (t - s + 1 + np.arange(s))[:, None] - t
        valid = np.take_along_axis(~torch.isnan(distant).numpy(), first, axis=1) & (pos >= 0)
        top[i, t - s:, : first.shape[1]] = np.where(valid, pos, -1)
    return DistantDependence(k=k, effect=effect, near=near, baseline=[int(b) for b in baseline],
                             forward_rows=rows, top=top)


def bucket_names(few: int) -> list[str]:
    return ["none", f"few (1-{few})" if few > 1 else "few (1)", f"many (>{few})"]


def buckets(k: np.ndarray, few: int) -> np.ndarray:
    """Bucket index per token: 0 = no distant token needed, 1 = 1..few, 2 = more; -1 = not scored."""
    out = np.where(k > few, 2, np.where(k > 0, 1, 0))
    return np.where(k >= 0, out, -1)
