"""The ablation estimator on hand-built models whose dependency sets are known exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lengen.diagnose.ablation import (
    AblationConfig,
    DependencyEstimate,
    estimate_dependencies,
    replacement_tokens,
    substitution_table,
    truncation_grid,
    truncation_profile,
)
from lengen.diagnose.shared_rows import estimate_shared_rows
from lengen.errors import ConfigError

V, T = 10, 24
BIT0, BIT1 = 8, 9  # "planted" symbols; 0..7 are background


class XorOfBits(nn.Module):
    """Predicts BIT1 or BIT0 from the product of the +-1 signs of the bits at ``deps`` (parity-like:
    flip any one and the answer flips; no other position matters). ``deps`` count from the end of
    the row as if it had length T, so truncated rows lose the earliest dependencies first.
    """

    def __init__(self, deps: list[int], length: int = T) -> None:
        super().__init__()
        self.length = length
        self.embed = nn.Embedding(V, V)
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(V))
        self.deps = deps

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.embed(tokens)  # [B, L, V] one-hot
        sign = e[..., BIT1] - e[..., BIT0]  # +1 / -1 on bit tokens, 0 on background
        length = tokens.shape[1]
        at = [length - (self.length - j) for j in self.deps]
        factors = [sign[:, i] if i >= 0 else torch.zeros(tokens.shape[0]) for i in at]  # cut: no signal
        prod = torch.stack(factors, dim=1).prod(dim=1)
        last = torch.zeros(tokens.shape[0], V)
        last[:, BIT1], last[:, BIT0] = 6 * prod, -6 * prod
        return torch.cat([torch.zeros(tokens.shape[0], length - 1, V), last[:, None, :]], dim=1)


def planted_rows(deps: list[int], rows: int, seed: int = 0, length: int = T) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 8, (rows, length), generator=g)
    tokens[:, deps] = torch.randint(BIT0, BIT1 + 1, (rows, len(deps)), generator=g)
    return tokens


def estimate(deps: list[int], rows: int = 3, length: int = T, **cfg: object) -> DependencyEstimate:
    model = XorOfBits(deps, length)
    tokens = planted_rows(deps, rows, length=length)
    with torch.no_grad():
        target = model(tokens)[:, -1].argmax(-1)
    ablatable = torch.ones_like(tokens, dtype=torch.bool)
    baseline = torch.arange(4)  # background tokens
    return estimate_dependencies(model, tokens, target, ablatable, baseline,
                                 AblationConfig(**cfg), embedding=model.embed)  # type: ignore[arg-type]


@pytest.mark.parametrize("screen", ["gradient", "none"])
@pytest.mark.parametrize("deps", [[3], [0, 20], [5, 6, 7], [1, 9, 15, 22], [2, 4, 11, 13, 17, 19]])
def test_recovers_exact_sets_of_a_non_additive_function(screen: str, deps: list[int]) -> None:
    est = estimate(deps, screen=screen, max_ablations=T)
    for row in range(3):
        assert sorted(est.dependencies[row]) == deps
        assert sorted(est.distances()[row]) == sorted(T - 1 - j for j in deps)
    assert est.k.tolist() == [len(deps)] * 3
    assert not bool(est.censored.any())


def test_gradient_screen_is_cheaper_than_one_forward_per_position() -> None:
    deps = [7, 30, 60]
    est = estimate(deps, rows=8, length=64, replacements=1, chunk=4)
    assert all(sorted(d) == deps for d in est.dependencies)
    # exhaustive ablation would take one forward per context position and row (64 per row)
    assert est.forward_rows / 8 < 0.3 * 64
    assert int(est.ablated.max()) <= 8


def test_screen_ranks_true_dependencies_first() -> None:
    est = estimate([4, 9, 16], rows=1)
    top = torch.argsort(torch.nan_to_num(est.screen[0], nan=-1.0), descending=True)[:3]
    assert sorted(top.tolist()) == [4, 9, 16]


def test_context_free_prediction_has_k_zero() -> None:
    class Constant(nn.Module):
        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(tokens.shape[0], tokens.shape[1], V)
            out[..., 3] = 5.0
            return out

    tokens = torch.randint(0, V, (3, 8))
    est = estimate_dependencies(Constant(), tokens, torch.full((3,), 3), torch.ones_like(tokens, dtype=torch.bool),
                                torch.arange(4))
    assert est.k.tolist() == [0, 0, 0]
    assert est.dependencies == [[], [], []]


def test_unablatable_positions_are_never_in_the_set() -> None:
    model = XorOfBits([2, 5])
    tokens = planted_rows([2, 5], 2)
    with torch.no_grad():
        target = model(tokens)[:, -1].argmax(-1)
    ablatable = torch.ones_like(tokens, dtype=torch.bool)
    ablatable[:, 5] = False
    est = estimate_dependencies(model, tokens, target, ablatable, torch.arange(4), embedding=model.embed)
    assert est.dependencies == [[2], [2]]


def test_replacements_skip_the_token_itself() -> None:
    tokens = torch.tensor([[0, 1, 2, 3, 4]])
    table = substitution_table(5, torch.tensor([1, 0, 2]), 2, classes=[[3, 4]])
    reps = replacement_tokens(tokens, table)
    assert reps[0].tolist() == [[1, 2], [0, 2], [1, 0], [4, 4], [3, 3]]
    assert bool((reps != tokens[:, :, None]).all())


def test_truncation_profile_drops_when_a_dependency_is_cut() -> None:
    model = XorOfBits([T - 6])  # five tokens before the last one
    tokens = planted_rows([T - 6], 4)
    with torch.no_grad():
        target = model(tokens)[:, -1].argmax(-1)
    profile = truncation_profile(model, tokens, target, truncation_grid(T))
    assert list(profile) == [1, 2, 4, 8, 16, T]
    assert profile[4] > 0.5 and profile[8] < 0.05


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError, match="share"):
        AblationConfig(share=1.5).validate()


class EveryPositionXor(nn.Module):
    """At every position p, predicts from the parity of the bits at p - a and p - b (when inside the row)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        sign = (tokens == BIT1).float() - (tokens == BIT0).float()  # [B, L]
        length = tokens.shape[1]
        out = torch.zeros(tokens.shape[0], length, V)
        for p in range(length):
            if p - self.a >= 0 and p - self.b >= 0:
                prod = sign[:, p - self.a] * sign[:, p - self.b]
                out[:, p, BIT1], out[:, p, BIT0] = 6 * prod, -6 * prod
        return out


def test_shared_rows_match_single_row_exhaustive_ablation() -> None:
    """One ablation pass per position serves all S scored predictions: the result per prediction must
    equal ablating that prediction's own context exhaustively, and find its two true positions."""
    model = EveryPositionXor(1, 4)
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(BIT0, BIT1 + 1, (2, 12), generator=g)  # every position holds a bit
    s = 5
    with torch.no_grad():
        targets = torch.stack([model(tokens)[:, p].argmax(-1) for p in range(12 - s, 12)], dim=1)
    baseline = torch.tensor([0, 1, 2])
    cfg = AblationConfig(replacements=1)
    shared = estimate_shared_rows(lambda x, m: model(x)[:, -m:], tokens, targets, torch.ones_like(tokens, dtype=torch.bool),
                                  baseline, cfg)
    assert shared.k.shape == (2 * s,) and shared.forward_rows == 2 + 2 * 12
    for i in range(2):
        for q in range(s):
            p = 12 - s + q
            prefix = tokens[i:i + 1, : p + 1]
            single = estimate_dependencies(lambda x: model(x), prefix, targets[i:i + 1, q],
                                           torch.ones_like(prefix, dtype=torch.bool), baseline,
                                           AblationConfig(replacements=1, screen="none", max_ablations=64))
            row = i * s + q
            assert int(shared.k[row]) == int(single.k[0]) == 2
            assert sorted(shared.distances()[row]) == sorted(single.distances()[0]) == [1, 4]
            own = shared.effects[row, 12 - 1 - p:]
            assert torch.allclose(own, single.effects[0], equal_nan=True)
            assert bool(torch.isnan(shared.effects[row, : 12 - 1 - p]).all())
