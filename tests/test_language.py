"""The language analysis: compact vocabularies, near-context losses, distant dependence and its buckets,
the experiment's `language:` and `quick:` sections, and a whole (tiny) run that resumes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lengen.config_parse import load_experiment, parse_experiment
from lengen.diagnose.ablation import AblationConfig
from lengen.diagnose.sources import ModelHandle, lengen_handle
from lengen.errors import ConfigError
from lengen.model import ModelConfig, Transformer
from lengen.text.corpus import Corpus, TokenSplit, compact_vocabulary
from lengen.text.distant import bucket_names, buckets, distant_dependence
from lengen.text.length_eval import near_context_losses, token_losses

ROOT = Path(__file__).parents[1]


def test_compact_vocabulary_keeps_frequent_training_tokens():
    train = TokenSplit(np.array([5, 5, 5, 7, 7, 9, 3, 1, 3, 5, 1], dtype=np.uint16), np.array([0, 11]))
    val = TokenSplit(np.array([5, 8, 7, 3, 9], dtype=np.uint16), np.array([0, 5]))
    corpus = Corpus(train=train, validation=val, vocab_size=10, eot=1, folder=Path("."))
    small = compact_vocabulary(corpus, 4)  # eot, then 5 (x4), then 7 and 3 (x2 each: 3 has the lower id)
    assert small.vocab_size == 4 and small.eot == 0
    assert small.train.tokens.tolist() == [1, 1, 1, 3, 3, 3, 2, 0, 2, 1, 0]
    assert small.validation.tokens.tolist() == [1, 3, 3, 2, 3]  # 8 never seen in training: unknown
    assert compact_vocabulary(corpus, 10) is corpus
    with pytest.raises(ConfigError, match="at least 2"):
        compact_vocabulary(corpus, 1)


@pytest.mark.parametrize("position", ["rope", "alibi", "learned", "randomized", "fire", "t5_bias"])
def test_lengen_handle_prefix_cache_equals_full_forward(position):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=11, d_model=32, n_layers=2, n_heads=4, position=position))
    handle = lengen_handle(model)
    row = torch.randint(0, 11, (1, 20))
    variants = row.repeat(5, 1)
    variants[:, 9:] = torch.randint(0, 11, (5, 11))
    assert handle.suffix_logits is not None
    assert torch.allclose(handle.suffix_logits(row, variants, 9, 6), handle.last_logits(variants, 6), atol=1e-5)
    assert torch.allclose(handle.logits(variants)[:, -6:], handle.last_logits(variants, 6), atol=1e-5)


def test_near_context_loss_reads_only_the_last_tokens():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=11, d_model=32, n_layers=2, n_heads=4, position="alibi"))
    windows = torch.randint(0, 11, (3, 30))
    full, near = token_losses(model, windows), near_context_losses(model, windows, 6)
    assert full.shape == near.shape == (3, 29)
    assert torch.allclose(full[:, :6], near[:, :6], atol=1e-5)  # tokens 1..6 have at most 6 tokens of context
    for p in (7, 18, 29):  # token p from tokens p-6 .. p-1 only
        assert torch.allclose(near[:, p - 1], token_losses(model, windows[:, p - 6:p + 1])[:, -1], atol=1e-5)
    assert not torch.allclose(full[:, 20:], near[:, 20:])


def sum_handle(distances, vocab=7):
    """A hand-built 'model' that predicts the sum (mod vocab) of the tokens at the given distances back
    (distance 0 = the current token), confidently: the ground truth of what each prediction needs."""
    longest = max(distances)

    def logits(tokens):
        total = sum(torch.roll(tokens, d, dims=1) for d in distances) % vocab
        out = torch.nn.functional.one_hot(total, vocab).float() * 8.0
        out[:, :longest] = 0  # not every source exists yet: no opinion
        return out

    return ModelHandle(logits=logits, embedding=None, vocab_size=vocab, max_length=None, description="sum",
                       logits_keep=lambda tokens, keep: logits(tokens)[:, -keep:])


def sum_windows(distances, n, length, vocab=7, seed=1):
    """Random windows that obey the sum rule wherever every source exists."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n, length), generator=g)
    for p in range(max(distances) + 1, length):
        x[:, p] = sum(x[:, p - 1 - d] for d in distances) % vocab
    return x


@pytest.mark.parametrize("distances, want", [((2,), 0), ((12,), 1), ((2, 12), 1), ((11, 15), 2),
                                             ((10, 12, 14, 16, 18), 5)])
def test_distant_k_counts_only_distant_dependence(distances, want):
    near = 10  # distances >= 10 are distant
    windows = sum_windows(distances, 2, 40)
    dep = distant_dependence(sum_handle(distances), windows, near, AblationConfig(replacements=2, share=0.99),
                             baseline=torch.tensor([0, 1]))
    assert (dep.k[:, :near] == -1).all()
    longest = max(near, *distances)
    # once every source is inside the window, the distant k is exactly the number of distant sources
    assert (dep.k[:, longest:] == want).all(), dep.k[:, longest:]
    b = buckets(dep.k, few=3)
    assert (b[:, longest:] == (0 if want == 0 else 1 if want <= 3 else 2)).all()
    assert bucket_names(3) == ["none", "few (1-3)", "many (>3)"]


def tiny_language(folder, tmp_path, **language):
    return {"experiment": "tiny-language", "task": "text",
            "task_args": {"corpus": str(folder), "tokenizer": "bytes", "validation_fraction": 0.34,
                          "cache_dir": str(tmp_path / "cache")},
            "schemes": [{"label": "ref", "position": "rope", "train": {"min_len": 40, "max_len": 40}}, "nope",
                        {"label": "rope_pose", "position": "rope", "train": {"pose_target_length": 40}}],
            "model": {"d_model": 16, "n_layers": 1, "n_heads": 2},
            "train": {"steps": 8, "batch_size": 4, "min_len": 10, "max_len": 10, "warmup": 1,
                      "target_accuracy": None, "check_every": 8},
            "eval": {"lengths": [10, 40], "samples": 4, "task_args": {"split": "validation"}},
            "language": {"reference": "ref", "context": 40, "windows": 5, "bin": 4, **language}}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        words = [f"name{rng.integers(0, 5)}" if j % 7 == 0 else "and" for j in range(60)]
        (root / f"doc{i}.txt").write_text(" ".join(words) + "\n", encoding="utf-8")
    return root


def test_language_run_writes_tidy_buckets_and_resumes(folder, tmp_path, monkeypatch):
    from lengen.experiment import run_experiment
    from lengen.report.results import read_csv
    from lengen.text import analysis

    monkeypatch.setattr(analysis, "CHUNK_WINDOWS", 2)
    # a tiny threshold: these 8-step models gain almost nothing from distant context, and the issue-14
    # section should still measure some tokens
    cfg = parse_experiment(tiny_language(folder, tmp_path, gain_threshold=1e-3))
    out = tmp_path / "run"
    run_experiment(cfg, out, workers=1, progress=False, report=False)
    lang = out / "language"
    rows = read_csv(lang / "language_results.csv")
    assert list(rows[0]) == analysis.COLUMNS
    assert {r["scheme"] for r in rows} == {"ref", "nope", "rope_pose"}
    for scheme in ("nope", "rope_pose"):
        mine = [r for r in rows if r["scheme"] == scheme]
        beyond = {r["bucket"]: r for r in mine if r["range"] == "beyond"}
        assert beyond["all"]["tokens"] == 5 * (39 - 9)  # positions 10..39 of 5 windows
        assert sum(beyond[b]["tokens"] for b in beyond if b != "all") == beyond["all"]["tokens"]
        ranges = [(r["start"], r["end"]) for r in mine if r["bucket"] == "all" and r["range"] != "beyond"]
        assert ranges == [(1, 10), (10, 20), (20, 40)]
        for r in mine:
            assert r["loss_increase"] == pytest.approx(r["loss"] - r["near_loss"], abs=1e-6)
    stats = json.loads((lang / "dependence_summary.json").read_text())
    assert sum(stats["bucket_tokens"].values()) == 5 * 30
    assert all((lang / f).stat().st_size > 0 for f in ("loss_vs_position.png", "loss_by_bucket.png", "summary.md"))
    # issue 14's section: every measured token gains >= the threshold, and its k is at least 1
    from lengen.text.recovery_analysis import RESULTS
    from lengen.text.sufficiency import Sufficiency

    assert (lang / RESULTS).is_file() and "Gain recovered (issue 14)" in (lang / "summary.md").read_text()
    with np.load(lang / "sufficiency.npz") as saved:
        suff = Sufficiency.from_arrays({k: saved[k] for k in saved.files})
    assert len(suff.k) and (suff.k >= 1).all() and (suff.position > 9).all()
    recovery = read_csv(lang / RESULTS)
    assert {r["model"] for r in recovery} == {"nope", "rope_pose"}
    assert {r["measure"] for r in recovery} == {"sufficiency", "single-position ablation"}
    from lengen.report.html import build_report

    page = build_report(out)
    assert "Language: loss beyond the training context" in page and "rope_pose" in page
    assert page.count("data:image/png;base64") >= 3

    # a second run reads everything back: no dependence measurement, no model scoring
    def fail(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(analysis, "distant_dependence", fail)
    monkeypatch.setattr(analysis, "token_losses", fail)
    before = (lang / "language_results.csv").read_text()
    run_experiment(cfg, out, workers=1, progress=False, report=False)
    assert (lang / "language_results.csv").read_text() == before

    # a copied run folder (new modification times, same contents) still reads everything back
    import shutil

    from safetensors.torch import load_file, save_file

    copy = tmp_path / "copied"
    shutil.copytree(out, copy, copy_function=shutil.copy)  # shutil.copy does not keep the times
    run_experiment(cfg, copy, workers=1, progress=False, report=False)
    assert (copy / "language" / "language_results.csv").read_text() == before

    # a model retrained in place (new weights) is scored again, not read from a stale cache
    weights = next((out / "cells").glob("nope_*")) / "checkpoint" / "model.safetensors"
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.01
    save_file(tensors, weights)
    with pytest.raises(AssertionError, match="recomputed"):
        run_experiment(cfg, out, workers=1, progress=False, report=False)


def test_dependence_measurement_resumes_after_an_interruption(folder, tmp_path, monkeypatch):
    from lengen.experiment import run_experiment
    from lengen.text import analysis

    monkeypatch.setattr(analysis, "CHUNK_WINDOWS", 2)
    # a tiny threshold: these 8-step models gain almost nothing from distant context, and the issue-14
    # section should still measure some tokens
    cfg = parse_experiment(tiny_language(folder, tmp_path, gain_threshold=1e-3))
    out = tmp_path / "run"
    real = analysis.distant_dependence
    calls = []

    def interrupted(handle, windows, *args, **kwargs):
        calls.append(windows.shape[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(handle, windows, *args, **kwargs)

    monkeypatch.setattr(analysis, "distant_dependence", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, out, workers=1, progress=False, report=False)
    partial = np.load(out / "language" / "dependence.npz")
    assert int(partial["done"]) == 2
    monkeypatch.setattr(analysis, "distant_dependence", real)
    resumed_calls = []
    monkeypatch.setattr(analysis, "distant_dependence",
                        lambda h, w, *a, **k: resumed_calls.append(w.shape[0]) or real(h, w, *a, **k))
    run_experiment(cfg, out, workers=1, progress=False, report=False)
    assert resumed_calls == [2, 1]  # windows 3-4 and 5 only
    resumed = np.load(out / "language" / "dependence.npz")["k"]
    (out / "language" / "dependence.npz").unlink()
    monkeypatch.setattr(analysis, "distant_dependence", real)
    run_experiment(cfg, out, workers=1, progress=False, report=False)
    assert (np.load(out / "language" / "dependence.npz")["k"] == resumed).all()


@pytest.mark.parametrize("language, message", [
    ({"reference": "nobody"}, "not a scheme label"),
    ({"reference": "nope"}, "must see the whole context"),
    ({"reference": "ref", "context": 10}, "must exceed"),
    ({"reference": "ref", "typo": 1}, "unknown key 'typo'"),
])
def test_language_section_errors(folder, tmp_path, language, message):
    raw = tiny_language(folder, tmp_path)
    raw["language"] = language
    with pytest.raises(ConfigError, match=message):
        parse_experiment(raw)


def test_quick_overrides(tmp_path):
    import yaml

    raw = tiny_language(tmp_path, tmp_path)
    raw["quick"] = {"train": {"steps": 2}, "language": {"windows": 1}, "schemes": raw["schemes"][:2]}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    full, quick = load_experiment(path), load_experiment(path, quick=True)
    assert full.train.steps == 8 and quick.train.steps == 2 and quick.train.batch_size == 4
    assert quick.language is not None and quick.language.windows == 1 and quick.language.context == 40
    assert quick.experiment == "tiny-language-quick" and len(quick.schemes) == 2
    del raw["quick"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="quick"):
        load_experiment(path, quick=True)


def test_shipped_language_experiment_and_its_quick_variant():
    full = load_experiment(ROOT / "experiments" / "language.yaml")
    quick = load_experiment(ROOT / "experiments" / "language.yaml", quick=True)
    assert full.language is not None and quick.language is not None
    assert full.language.reference == quick.language.reference
    assert quick.train.steps < full.train.steps and len(quick.cells()) < len(full.cells())
    assert {c.train.pose_target_length for c in full.cells()} == {None, 512}


def test_difficulty_matching_uses_the_same_bins_for_every_bucket():
    from lengen.text.analysis import MIN_STRATUM, difficulty_strata, matched_mean

    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 5, size=(4, 500))
    bucket = np.where((reference > 3) & (rng.uniform(size=reference.shape) < 0.5), 2, 0)  # "many" only when hard
    bucket[:, :10] = -1  # not scored
    strata = difficulty_strata(reference, bucket, n=5)
    assert (strata[:, :10] == -1).all()
    kept = set(np.unique(strata[strata >= 0]).tolist())
    assert kept == {3, 4}  # only the two hardest bins (losses 3-5) hold both buckets
    assert all(((bucket == b) & (strata == s)).sum() >= MIN_STRATUM for b in (0, 2) for s in (3, 4))
    # an increase that depends on difficulty only: equal for both buckets once matched
    increase = reference.copy()
    raw = [increase[bucket == b].mean() for b in (0, 2)]
    matched = [matched_mean(increase, bucket == b, strata) for b in (0, 2)]
    assert raw[1] - raw[0] > 1.5 and abs(matched[1] - matched[0]) < 0.1
