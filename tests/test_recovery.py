"""Issue 14's estimator and outcome on hand-built models and data: the greedy sufficiency k with its two
rankings (jointly needed tokens, redundant copies), the stratified gain recovered (removes a position
confound that the raw share shows), the window bootstrap, and the earlier reading's position table."""

import numpy as np
import pytest
import torch

from lengen.check.lm import LM
from lengen.errors import LengenError
from lengen.text.recovery import (
    Tokens,
    is_difference,
    recovery_rows,
    sparsity_buckets,
    strata,
    stratified_share,
)
from lengen.text.sufficiency import SufficiencyConfig, measure_sufficiency

V, TARGET, NEAR, C = 8, 7, 4, 24


def marker_lm(score):
    """An LM whose log p(TARGET) is ``score(n)`` (n = how many distinct markers 1, 2, 3 the row holds);
    every other token shares the rest of the probability."""

    def last_logprobs(tokens, ids):
        n = torch.stack([(tokens == m).any(1) for m in (1, 2, 3)], 1).sum(1)
        lp_t = torch.tensor([score(int(x)) for x in n], dtype=torch.float)
        rest = torch.log1p(-lp_t.exp()) - np.log(V - 1)
        out = rest[:, None].repeat(1, V)
        out[:, TARGET] = lp_t
        return out

    return LM(last_logprobs, lambda w: torch.zeros(w.shape[0], w.shape[1] - 1), "markers", None)


def window(markers):
    w = torch.zeros(1, C, dtype=torch.long)
    for pos, m in markers:
        w[0, pos] = m
    w[0, C - 1] = TARGET
    return w


@pytest.mark.parametrize("k", [1, 2, 3])
def test_jointly_needed_markers_are_found_through_the_ablation_ranking(k):
    # all or nothing: no marker helps alone, so only the ablation ranking (each marker's removal is fatal) finds them
    lm = marker_lm(lambda n: -0.01 if n >= k else -5.0)
    pos = [2, 6, 11][:k]
    w = window([(p, m + 1) for m, p in enumerate(pos)])
    top = np.array([pos + [-1] * (3 - k)])
    s = measure_sufficiency(lm, w, np.array([0]), np.array([C - 1]), NEAR, top, SufficiencyConfig())
    assert s.k[0] == k and s.k_ablation[0] == k
    assert s.gain[0] == pytest.approx(5.0 - 0.01, abs=1e-4)
    assert s.reach[0] == C - 2 - min(pos)
    if k > 1:
        assert s.k_alone[0] > k  # restored alone, a marker is worth nothing here


def test_redundant_copies_are_found_through_the_restored_alone_ranking():
    # marker 1 three times far back: removing one copy changes nothing (ablation sees no dependence), one copy suffices
    lm = marker_lm(lambda n: -0.01 if n >= 1 else -3.0)
    w = window([(1, 1), (5, 1), (9, 1)])
    no_signal = np.array([[-1]])  # the ablation ranking has nothing: its order falls back after the others
    s = measure_sufficiency(lm, w, np.array([0]), np.array([C - 1]), NEAR, no_signal, SufficiencyConfig())
    assert s.k[0] == 1 and s.k_alone[0] == 1


def test_additive_markers_need_the_share():
    # each marker is worth 1 nat of 3: two recover 67% (< 80%), so k = 3; with share 0.6, k = 2
    lm = marker_lm(lambda n: -3.0 + n - 0.01 * (n == 3))
    w = window([(3, 1), (7, 2), (12, 3)])
    for share, want in ((0.8, 3), (0.6, 2)):
        s = measure_sufficiency(lm, w, np.array([0]), np.array([C - 1]), NEAR, None, SufficiencyConfig(share=share))
        assert s.k[0] == want


def test_sufficiency_rejects_tokens_without_distant_context():
    lm = marker_lm(lambda n: -1.0)
    with pytest.raises(LengenError, match="positions must lie"):
        measure_sufficiency(lm, window([]), np.array([0]), np.array([NEAR]), NEAR, None, SufficiencyConfig())
    with pytest.raises(LengenError, match="threshold"):
        SufficiencyConfig(threshold=0).validate()


def test_stratified_share_removes_a_position_confound():
    # the share depends only on position (far tokens recover less); the dense bucket sits mostly far back
    rng = np.random.default_rng(0)
    n = 4000
    position = rng.choice([70, 300], n)
    far = position == 300
    bucket = np.where(rng.random(n) < np.where(far, 0.7, 0.2), 2, 0)
    share = np.where(far, 0.2, 0.8)
    tok = Tokens(rng.integers(0, 50, n), position, bucket, np.ones(n), np.ones(n), np.ones(n))
    st = strata(tok, 63)
    raw = [share[bucket == b].mean() for b in (0, 2)]
    strat = [stratified_share(share, bucket, st, b, [0, 2]) for b in (0, 2)]
    assert raw[0] - raw[1] > 0.2  # the raw view says sparse tokens recover more
    assert strat[0] == pytest.approx(strat[1], abs=1e-9)


def test_recovery_rows_bootstrap_over_windows():
    rng = np.random.default_rng(1)
    n = 600
    win = np.repeat(np.arange(30), 20)
    g_ref = 0.5 + rng.random(n)
    k = rng.integers(1, 6, n)
    bucket, names = sparsity_buckets(k, 3)
    assert names == ["k=1", "k=2-3", ">3"]
    tok = Tokens(win, rng.integers(64, 512, n), bucket, g_ref, rng.random(n), rng.integers(1, 100, n))
    # a model whose share is a per-window constant: tokens of a window are not independent
    per_window = rng.random(30)
    rows = recovery_rows({"same": [g_ref.copy()], "windowed": [g_ref * per_window[win]]}, tok, names, 63, "sufficiency",
                         bootstrap=200)
    same = {r["bucket"]: r for r in rows if r["model"] == "same" and not is_difference(r["bucket"])}
    assert all(r["raw"] == pytest.approx(1.0) and r["raw_hi"] - r["raw_lo"] < 1e-9 for r in same.values())
    same_diff = next(r for r in rows if r["model"] == "same" and is_difference(r["bucket"]))
    assert same_diff["bucket"] == "k=1 minus >3" and same_diff["raw"] == pytest.approx(0.0, abs=1e-12)
    lone = Tokens(np.zeros(5, dtype=int), np.full(5, 100), np.zeros(5, dtype=int), np.ones(5), np.ones(5), np.ones(5))
    one_window = recovery_rows({"m": [np.full(5, 0.5)]}, lone, names, 63, "sufficiency", bootstrap=20)[0]
    assert one_window["raw"] == pytest.approx(0.5) and np.isnan(one_window["raw_lo"])  # no interval from one window
    two_buckets = Tokens(lone.window, lone.position, np.array([0, 0, 2, 2, 2]), lone.ref_gain, lone.ref_loss,
                         lone.frequency)
    diff = next(r for r in recovery_rows({"m": [np.array([1.0, 1.0, 0.5, 0.5, 0.5])]}, two_buckets, names, 63,
                                         "sufficiency", bootstrap=20) if is_difference(r["bucket"]))
    assert diff["raw"] == pytest.approx(0.5) and np.isnan(diff["raw_lo"]) and np.isnan(diff["stratified_hi"])
    win_all = next(r for r in rows if r["model"] == "windowed" and r["bucket"] == "all")
    assert win_all["windows"] == 30 and win_all["tokens"] == n
    # the interval reflects 30 windows, not 600 tokens: as wide as a bootstrap over the window means
    assert win_all["raw_hi"] - win_all["raw_lo"] > 2 * 1.96 * per_window.std() / np.sqrt(30) * 0.6


def test_position_confound_table_reproduces_the_issue_numbers():
    from pathlib import Path

    from lengen.text.position_confound import confound_tables

    path = Path(__file__).parents[1] / "docs" / "figures" / "language" / "language_results.csv"
    text = confound_tables(str(path))
    assert "| rope | [64,128) | +0.060 | +0.097 | +0.183 |" in text
    assert "| rope | +0.257 | +0.289 | +0.307 |" in text


def test_paired_difference_sees_an_effect_that_side_by_side_intervals_miss():
    """Windows differ a lot in how much of the gain a model recovers, and the sparse bucket recovers a
    little more than the dense one within every window: the two buckets' intervals overlap, but the
    paired difference (same window draws) excludes 0, and its point is the difference of the points."""
    rng = np.random.default_rng(3)
    windows, per = 24, 20
    win = np.repeat(np.arange(windows), per)
    bucket = np.tile(np.repeat([0, 2], per // 2), windows)
    level = rng.uniform(0.1, 1.9, windows)[win]
    g_ref = np.ones(len(win))
    g_model = level * np.where(bucket == 0, 0.6, 0.5) + rng.normal(0, 0.01, len(win))
    tok = Tokens(win, np.full(len(win), 100), bucket, g_ref, rng.random(len(win)), np.ones(len(win)))
    names = ["k=1", "k=2-3", ">3"]
    rows = {r["bucket"]: r for r in recovery_rows({"m": [g_model]}, tok, names, 63, "sufficiency", bootstrap=300)}
    sparse, dense, diff = rows["k=1"], rows[">3"], rows["k=1 minus >3"]
    assert sparse["raw_lo"] < dense["raw_hi"]  # side by side: overlapping
    assert diff["raw_lo"] > 0 and diff["stratified_lo"] > 0  # paired: the effect is seen
    assert diff["raw"] == pytest.approx(sparse["raw"] - dense["raw"])
    assert diff["tokens"] == len(win) and diff["windows"] == windows and diff["measure"] == "sufficiency"
    # one bucket only: no difference row
    single = Tokens(win, tok.position, np.zeros(len(win), dtype=int), g_ref, tok.ref_loss, tok.frequency)
    assert not any(is_difference(r["bucket"]) for r in recovery_rows({"m": [g_model]}, single, names, 63, "x",
                                                                       bootstrap=20))
