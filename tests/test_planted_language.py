"""Issue 14's pipeline check on planted text: the sufficiency measure must recover the planted k of a
k-token code read far back, and the gain-recovered outcome must show a planted effect (a reader that can
use one distant token recovers a 1-token code fully and half of a 2-token code) and no effect where none
is planted (the reference itself, and a reader of the near block only)."""

import dataclasses

import numpy as np
import pytest
import torch

from lengen.check.lm import lengen_lm
from lengen.config_parse import parse_experiment
from lengen.diagnose.sources import lengen_handle
from lengen.errors import LengenError
from lengen.text.distant import distant_dependence
from lengen.text.length_eval import near_context_losses, token_losses
from lengen.text.planted_text import PlantedText, keep_codes, reference_experiment
from lengen.text.recovery import Tokens, recovery_rows, sparsity_buckets
from lengen.text.sufficiency import SufficiencyConfig, measure_sufficiency, sizes

NEAR = 7


def planted_reference(tmp_path, gen):
    from lengen.train import train

    dataclasses.replace(gen, drop=0.25).write_corpus(tmp_path / "corpus", 100, seed=0)  # see PlantedText.drop
    raw = reference_experiment(tmp_path / "corpus", tmp_path / "cache", steps=600)
    return train(parse_experiment(raw).cells()[0], progress=False).model.eval()


def test_planted_k_is_recovered_and_the_outcome_shows_the_planted_effect(tmp_path):
    gen = PlantedText(ks=(1, 2), alphabet=3, length=32, near=NEAR)
    model = planted_reference(tmp_path, gen)
    docs, events = gen.documents(8, seed=1)  # 64 held-out events, one window each
    windows = gen.windows(docs)
    rows = np.arange(len(events))
    answer = np.array([e.answer for e in events])
    planted = np.array([e.k for e in events])
    long, short = token_losses(model, windows).numpy(), near_context_losses(model, windows, NEAR).numpy()
    gain = short - long  # [W, C-1]: column p - 1 is token p
    g_ref = gain[rows, answer - 1]
    assert (g_ref >= 0.5).mean() >= 0.9, "the reference did not learn the planted dependence"
    # filler far from an event's answer gains nothing from distant context
    filler = np.ones_like(gain, dtype=bool)
    filler[:, : NEAR] = False
    for i, e in enumerate(events):
        filler[i, max(0, e.answer - 3): e.answer + 2] = False  # query, answer and the tokens around them
        filler[i, [c - 1 for c in e.codes if c > 0]] = False
    assert np.median(gain[filler]) < 0.1

    keep = g_ref >= 0.5
    dep = distant_dependence(lengen_handle(model), windows, NEAR)
    suff = measure_sufficiency(lengen_lm(model), windows, rows[keep], answer[keep], NEAR,
                               dep.top[rows[keep], answer[keep] - 1], SufficiencyConfig())
    hit = suff.k == planted[keep]
    # 84% at these sizes; the misses are 2-token codes read as 1: from one code the small reference is
    # already surer than a 1-in-3 guess, so one code recovers >= 80% of its gain
    assert hit.mean() >= 0.8, list(zip(planted[keep], suff.k, strict=True))
    assert np.allclose(suff.gain, g_ref[keep], atol=1e-3)  # kept ids or shifted ids: the same for RoPE
    # the chosen set reaches exactly as far back as the farthest planted code, where k was right
    far = np.array([e.answer - 1 - e.codes[0] for e in events])[keep]
    assert (suff.reach[hit] == far[hit]).mean() >= 0.9

    bucket, names = sparsity_buckets(suff.k, few=3)
    tok = Tokens(rows[keep], answer[keep], bucket, g_ref[keep], long[rows, answer - 1][keep],
                 np.ones(int(keep.sum())))

    def reader_gain(w):
        return short[rows, answer - 1][keep] - token_losses(model, w).numpy()[rows, answer - 1][keep]

    readers = {"reference": [g_ref[keep]], "near only": [np.zeros(int(keep.sum()))],
               "one distant token": [reader_gain(keep_codes(windows, events, 1))]}
    out = {(r["model"], r["bucket"]): r for r in recovery_rows(readers, tok, names, NEAR, "sufficiency", bootstrap=100)}
    for b in ("k=1", "k=2-3", "all"):
        assert out[("reference", b)]["raw"] == pytest.approx(1.0)
        assert out[("near only", b)]["raw"] == pytest.approx(0.0)
    one, two = out[("one distant token", "k=1")], out[("one distant token", "k=2-3")]
    assert one["raw"] > 0.8 and two["raw"] < 0.7 and one["raw_lo"] > two["raw_hi"], (one, two)
    print(f"\nplanted text: {int(keep.sum())} of {len(events)} answers gain >= 0.5 nats; k exact for {hit.mean():.0%} "
          f"(k=1: {hit[planted[keep] == 1].mean():.0%}, k=2: {hit[planted[keep] == 2].mean():.0%}); a reader of one "
          f"distant token recovers {one['raw']:.2f} [{one['raw_lo']:.2f}, {one['raw_hi']:.2f}] of bucket k=1 and "
          f"{two['raw']:.2f} [{two['raw_lo']:.2f}, {two['raw_hi']:.2f}] of bucket k=2-3")  # docs/language.md quotes it


def test_sizes_are_exact_then_a_ladder():
    assert sizes(5) == [1, 2, 3, 4, 5]
    assert sizes(40)[:16] == list(range(1, 17)) and sizes(40)[-1] == 40 and sizes(40) == sorted(set(sizes(40)))


@pytest.mark.parametrize("kwargs, message", [({"ks": (0,)}, "every k"), ({"alphabet": 1}, "alphabet"),
                                             ({"length": 16, "near": 15}, "cannot hold"), ({"drop": 1.0}, "drop")])
def test_planted_text_rejects_impossible_layouts(kwargs, message):
    with pytest.raises(LengenError, match=message):
        PlantedText(**kwargs).documents(1, 0)


def test_planted_documents_hold_the_planted_answer():
    gen = PlantedText(ks=(1, 2, 3), alphabet=2, length=32, near=7, events=3)
    docs, events = gen.documents(4, seed=5)
    w = gen.windows(docs)
    assert w.shape == (12, 32)
    for row, e in zip(w.tolist(), events, strict=True):
        text = bytes(row).decode()
        assert min(e.answer - 1 - c for c in e.codes) >= 7  # every code is distant
        assert text[e.answer - 1] == "<>^"[e.k - 1]
        digits = ["0123456789!#$%&*+=?@".index(text[c]) - slot * 2 for slot, c in enumerate(e.codes)]
        assert "ABCDEFGH"[sum(d * 2 ** j for j, d in enumerate(digits))] == text[e.answer]
    assert torch.equal(keep_codes(w, events, 3), w)


@pytest.mark.slow
def test_planted_k_up_to_3_is_recovered_by_a_reference_trained_with_holes():
    """docs/language.md, "Planted k = 3": with holes in its training windows (lengen.holes) the reference
    reads a truncated context holding exactly the planted codes as it reads the whole window (0.98-1.00 of
    the gain on seeds 0-2, 0.83 without holes), and with share 0.9 the measured k is exact for k = 1 and 2
    and for most k = 3 answers (95% / 83% / 67% on seeds 0-2; this runs seed 0). About 5 minutes."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "docs" / "language_scripts" / "planted_k.py"
    out = subprocess.run([sys.executable, str(script), "--holes", "40", "--share", "0.9"], capture_output=True,
                         text=True, check=True).stdout
    rows = {int(r.split("|")[1]): r.split("|") for r in out.splitlines() if r.startswith("| ") and r[2].isdigit()}
    assert set(rows) == {1, 2, 3}, out
    exact = {k: float(r[4].strip().rstrip("%")) / 100 for k, r in rows.items()}
    all_codes = {k: float(r[6].split()[0]) for k, r in rows.items()}
    assert exact[1] >= 0.95 and exact[2] >= 0.95 and exact[3] >= 0.6, out
    assert min(all_codes.values()) >= 0.95, out
