"""The properties every registered scheme and task must have, as plain functions.

The discovery tests (test_model.py, test_task_properties.py) call them for every name in the
registries, and test_plugins.py calls the same functions for a scheme and a task that another
package registers through an entry point: one definition of each property, whoever wrote the class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lengen.kernels import rotate_halves
from lengen.model import KVCache, ModelConfig, Transformer
from lengen.positions import SCHEMES
from lengen.tasks import IGNORE, TASKS, Task

VOCAB = 13


# -- schemes --------------------------------------------------------------------------------------

def scheme_model(position: str, position_args: dict[str, Any] | None = None, **model_args: Any) -> Transformer:
    """A small eval-mode model with ``position``; the scheme's parameters are perturbed, since
    zero-initialised tables (T5) would make the properties trivially true."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=VOCAB, position=position, position_args=position_args or {},
                                    **model_args))
    with torch.no_grad():
        for p in model.positions.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model.eval()


def plain_ids(model: Transformer, b: int, t: int, start: int = 0) -> torch.Tensor:
    ids = torch.arange(start, start + t).expand(b, t)
    return model.prepare_ids(ids, torch.Generator().manual_seed(0))


def check_causal(model: Transformer) -> None:
    """Changing a later token never changes an earlier output (and does change the later ones)."""
    x = torch.randint(0, VOCAB, (4, 24))
    ids = plain_ids(model, 4, 24)
    y = model(x, ids)
    for cut in (1, 11, 23):
        x2 = x.clone()
        x2[:, cut:] = (x2[:, cut:] + 1 + torch.randint(0, VOCAB - 2, x2[:, cut:].shape)) % VOCAB
        y2 = model(x2, ids)
        assert torch.allclose(y[:, :cut], y2[:, :cut], atol=1e-5), cut
        assert not torch.allclose(y[:, cut:], y2[:, cut:], atol=1e-5), cut


def check_shift(model: Transformer, invariant: bool) -> None:
    """The scheme's declared ``shift_invariant`` holds: adding one constant to every id changes no
    output (declared True), or changes the outputs (declared False; the shift of 600 goes beyond the
    512 that FIRE normalises by at initialisation)."""
    x = torch.randint(0, VOCAB, (3, 20))
    ids = torch.arange(20).expand(3, 20)
    base = model(x, ids)
    if invariant:
        for shift in (1, 37, 500):
            assert torch.allclose(model(x, ids + shift), base, atol=2e-4), shift
    else:
        assert not torch.allclose(model(x, ids + 600), base, atol=1e-4)


def check_cache_equals_full_forward(model: Transformer) -> None:
    """Decoding piece by piece with the key/value cache gives the full forward's outputs."""
    x = torch.randint(0, VOCAB, (2, 19))
    ids = plain_ids(model, 2, 19)
    full = model(x, ids)
    cache = KVCache()
    pieces = [model(x[:, :7], ids[:, :7], cache)]
    pieces.append(model(x[:, 7:10], ids[:, 7:10], cache))  # several tokens at once after a prefix
    pieces += [model(x[:, t : t + 1], ids[:, t : t + 1], cache) for t in range(10, 19)]
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5)


def check_custom_ids(model: Transformer) -> None:
    """Coupled ids repeat values and need not increase; the scheme must accept them."""
    ids = torch.tensor([[0, 1, 2, 3, 1, 2, 3, 4]])
    x = torch.randint(0, VOCAB, (1, 8))
    out = model(x, model.prepare_ids(ids, torch.Generator().manual_seed(0)))
    assert out.shape == (1, 8, VOCAB) and torch.isfinite(out).all()


def check_rotation_tables(model: Transformer) -> None:
    """A scheme that hands out rotation tables rotates by exactly them: the attention uses the tables
    in place of ``rotate`` on its fused q/k/v path, so the two must agree bit for bit."""
    ids = plain_ids(model, 2, 9)
    x = torch.randn(2, 2, model.cfg.n_heads, 9, model.cfg.d_model // model.cfg.n_heads)
    tables = model.positions.rotation(ids, x.dtype)
    if tables is not None:
        assert torch.equal(model.positions.rotate(x, ids), rotate_halves(x, *tables))


def check_scheme(name: str, position_args: dict[str, Any] | None = None) -> None:
    """Every scheme property, for one registered scheme (what test_plugins runs on a plugin)."""
    model = scheme_model(name, position_args)
    check_causal(model)
    check_shift(model, SCHEMES.get_class(name).shift_invariant)
    check_cache_equals_full_forward(model)
    check_custom_ids(model)
    check_rotation_tables(model)


# -- tasks ----------------------------------------------------------------------------------------

def lengths(task: Task) -> list[int]:
    low = task.min_length()
    return sorted({low, low + 1, max(low, 7), max(low, 16)})


def check_recomputable(task: Task) -> None:
    """Answers follow from the tokens at their dependency positions alone."""
    for length in lengths(task):
        batch = task.sample(np.random.default_rng(length), 64, length)
        assert torch.equal(task.recompute_answer(batch), batch.answers()), (task.name, length)


def check_seeded(task: Task) -> None:
    """The same seed gives the same batch; another seed another one."""
    length = max(task.min_length(), 12)
    a = task.sample(np.random.default_rng(7), 32, length)
    b = task.sample(np.random.default_rng(7), 32, length)
    c = task.sample(np.random.default_rng(8), 32, length)
    for field in ("tokens", "targets", "position_ids", "answer_index", "dependencies", "coupled_ids"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None and y is None) or torch.equal(x, y), field
    assert a.prompt_length == b.prompt_length
    assert not torch.equal(a.tokens, c.tokens)


def check_shapes(task: Task) -> None:
    """Shapes, targets, vocabulary, dependency positions and position-id bounds agree."""
    for length in lengths(task):
        batch = task.sample(np.random.default_rng(length + 100), 48, length)
        b, t = batch.tokens.shape
        a = batch.answer_index.shape[1]
        assert b == 48 and batch.targets.shape == (b, t) and batch.position_ids.shape == (b, t)
        assert batch.dependencies.shape[:2] == (b, a)
        assert int(batch.tokens.min()) >= 0 and int(batch.tokens.max()) < task.vocab_size
        # targets: the next token at every answer position, IGNORE elsewhere
        assert int((batch.targets != IGNORE).sum()) == b * a
        assert torch.equal(batch.answers(), torch.gather(batch.tokens, 1, batch.answer_index + 1))
        # answers come after the prompt, in order; multi-token answers end the sequence (generation)
        assert int(batch.answer_index.min()) >= batch.prompt_length - 1
        assert (batch.answer_index.diff(dim=1) > 0).all()
        if task.multi_token:
            assert t == batch.prompt_length + a
        # a dependency is a real position at or before the prediction that uses it, never repeated
        deps = batch.dependencies
        assert ((deps >= 0) | (deps == -1)).all()
        assert ((deps <= batch.answer_index[:, :, None]) | (deps == -1)).all()
        for row in deps.reshape(-1, deps.shape[-1])[:200].tolist():
            row = [d for d in row if d >= 0]
            assert len(row) == len(set(row))
        # position ids stay below the bounds the model's tables are sized from
        assert int(batch.position_ids.max()) < task.max_position_id(length)
        if batch.coupled_ids is not None:
            assert batch.coupled_ids.shape == (b, t)
            assert int(batch.coupled_ids.min()) >= 0
            assert int(batch.coupled_ids.max()) < task.max_position_id(length, "coupled")


def check_chance(task: Task) -> None:
    """``chance_accuracy`` is the exact match of guessing each answer among its possible values (0 for
    multi-token answers: guessing a whole answer is negligible)."""
    chance = task.chance_accuracy()
    assert 0 <= chance < 1
    if task.multi_token:
        assert chance == 0
    batch = task.sample(np.random.default_rng(3), 2000, max(task.min_length(), 8))
    if batch.answer_index.shape[1] == 1 and chance > 0:  # one answer: at most 1/chance values occur
        assert len(set(batch.answers()[:, 0].tolist())) <= round(1 / chance)


def check_outputs_copy_by_id(task: Task, n: int = 12) -> None:
    """Seq2seq layouts: inputs carry ids 1..n, separator and end n + 1, and each output token is the
    input token whose id it carries (declared by ``outputs_copy_by_id``)."""
    batch = task.sample(np.random.default_rng(0), 64, n)
    ids, tokens = batch.coupled_ids, batch.tokens
    assert ids is not None
    assert torch.equal(ids[:, :n], torch.arange(1, n + 1).expand(64, n))
    assert (ids[:, n] == n + 1).all() and (ids[:, -1] == n + 1).all()  # SEP and EOS: the end id
    out_ids = ids[:, n + 1:-1]
    assert torch.equal(torch.gather(tokens, 1, out_ids - 1), tokens[:, n + 1:-1])


def check_task(name: str, args: dict[str, Any] | None = None) -> None:
    """Every task property that applies to one registered task (its declared flags decide)."""
    task = TASKS.create(name, **(args or {}))
    if type(task).has_dependencies:
        check_recomputable(task)
        check_shapes(task)
        check_chance(task)
    check_seeded(task)
    if type(task).outputs_copy_by_id:
        check_outputs_copy_by_id(task)
