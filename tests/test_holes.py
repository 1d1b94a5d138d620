"""Training windows with holes (lengen.holes): the kept tokens keep their ids and their next-token targets,
the window ends contiguous, whole windows keep ids 0..T-1, and bad settings are refused before training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lengen.config_parse import parse_experiment
from lengen.config_rules import validate_experiment
from lengen.errors import ConfigError
from lengen.holes import delete_tokens, holed_length
from lengen.tasks import IGNORE, Batch


def text_batch(rows: int, length: int) -> Batch:
    """Token value = place in the drawn window, so every kept token says where it came from."""
    tokens = torch.arange(length).expand(rows, length).contiguous()
    targets = torch.full_like(tokens, IGNORE)
    targets[:, :-1] = tokens[:, 1:]
    return Batch(tokens=tokens, targets=targets, position_ids=tokens.clone(),
                 answer_index=torch.arange(length - 1).expand(rows, length - 1).contiguous(),
                 dependencies=torch.empty(rows, length - 1, 0, dtype=torch.long), prompt_length=1)


def test_kept_tokens_keep_their_ids_and_targets_and_the_window_ends_contiguous():
    length, holes = 20, 8
    out = delete_tokens(text_batch(200, holed_length(length, holes)), holes, np.random.default_rng(0))
    assert out.tokens.shape == out.targets.shape == out.position_ids.shape == (200, length)
    assert out.answer_index.shape == (200, length - 1)
    front = out.tokens[:, :1] - out.position_ids[:, :1]  # tokens dropped at the front of each row
    assert torch.equal(out.tokens - out.position_ids, front.expand(-1, length))  # ids are places minus front
    assert bool((out.position_ids.diff(dim=1) >= 1).all())  # increasing: order kept, holes are gaps
    # every kept token still predicts the text's next token, even where that token was deleted
    assert torch.equal(out.targets[:, :-1], out.tokens[:, :-1] + 1) and bool((out.targets[:, -1] == IGNORE).all())
    deleted = out.position_ids[:, -1] + 1 - length  # the last token is kept: its id counts the gaps before it
    assert torch.equal(deleted, holes - front[:, 0])  # d deleted, holes - d dropped at the front
    assert int(deleted.min()) == 0 and int(deleted.max()) == holes  # whole windows and fully holed ones occur
    whole = deleted == 0
    assert torch.equal(out.position_ids[whole], torch.arange(length).expand(int(whole.sum()), length))
    last_gap = torch.stack([torch.nonzero(r.diff() > 1).max() if bool((r.diff() > 1).any()) else torch.tensor(-1)
                            for r in out.position_ids])
    assert bool((last_gap < length - 1).all())  # the last token is never deleted: the near block is whole


def test_holes_are_drawn_from_the_data_stream():
    batch = text_batch(16, 30)
    a = delete_tokens(batch, 10, np.random.default_rng(3))
    b = delete_tokens(batch, 10, np.random.default_rng(3))
    c = delete_tokens(batch, 10, np.random.default_rng(4))
    assert torch.equal(a.position_ids, b.position_ids) and not torch.equal(a.position_ids, c.position_ids)


def test_a_task_that_does_not_score_every_token_is_refused():
    batch = text_batch(2, 12)
    batch.answer_index = batch.answer_index[:, :3]
    with pytest.raises(ConfigError, match="scores every next token"):
        delete_tokens(batch, 4, np.random.default_rng(0))


def experiment(train: dict, task: str = "text", task_args: dict | None = None, position: str = "rope"):
    return parse_experiment({"experiment": "holes", "task": task, "task_args": task_args or {},
                             "schemes": [position], "seeds": [0], "model": {"d_model": 16, "n_layers": 1, "n_heads": 2},
                             "train": {"steps": 4, "batch_size": 2, "min_len": 8, "max_len": 8, **train},
                             "eval": {"lengths": [8], "samples": 2}})


@pytest.mark.parametrize("train, task, position, message", [
    ({"holes": -1}, "text", "rope", "holes must be >= 0"),
    ({"holes": 4, "pose_target_length": 32}, "text", "rope", "cannot be combined"),
    ({"holes": 4}, "sparse_parity", "rope", "scores every next token"),
])
def test_bad_holes_settings_are_one_line_errors(train, task, position, message, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    args = {"corpus": str(corpus), "tokenizer": "bytes", "cache_dir": str(tmp_path / "cache")} if task == "text" else {}
    with pytest.raises(ConfigError, match=message) as e:
        validate_experiment(experiment(train, task, args, position))
    assert "\n" not in str(e.value)


def test_a_text_model_trains_with_holes(tmp_path):
    from lengen.train import train

    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    cfg = experiment({"holes": 6, "target_accuracy": None},
                     "text", {"corpus": str(corpus), "tokenizer": "bytes", "cache_dir": str(tmp_path / "cache")})
    validate_experiment(cfg)
    result = train(cfg.cells()[0], progress=False)
    assert result.steps == 4 and np.isfinite(result.history[-1]["loss"])
