"""The task zoo (issue 18): each task's answers checked against an independent statement of its
definition (Python integers, Python's own expression evaluator, a plain interpreter), plus hand examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lengen.errors import ConfigError
from lengen.tasks import expressions as ex
from lengen.tasks import make_task
from lengen.tasks.stack_manipulation import POP, PUSH1, final_stack


def _sample(name, length, batch=64, seed=0, **args):
    task = make_task(name, **args)
    return task, task.sample(np.random.default_rng(seed), batch, length)


def test_even_pairs_counts_ab_and_ba_pairs():
    _, batch = _sample("even_pairs", 11, 256)
    for row, ans in zip(batch.tokens[:, :11].tolist(), batch.answers()[:, 0].tolist(), strict=True):
        s = "".join("ab"[t] for t in row)
        pairs = sum(s[i:i + 2] in ("ab", "ba") for i in range(len(s) - 1))
        assert ans == (4 if pairs % 2 == 0 else 3)


def test_parity_check_and_cycle_navigation_by_definition():
    _, batch = _sample("parity_check", 9, 128)
    assert torch.equal(batch.answers()[:, 0], 3 + batch.tokens[:, :9].sum(1) % 2)
    task, batch = _sample("cycle_navigation", 9, 128, states=5)
    moves = batch.tokens[:, :9]
    state = ((moves == 1).sum(1) - (moves == 2).sum(1)) % 5
    assert torch.equal(batch.answers()[:, 0], 4 + state)
    with pytest.raises(ConfigError):
        make_task("cycle_navigation", states=1)


def _python_value(tokens: list[int], p: int, x: int | None = None) -> int:
    names = {p + ex.PLUS: "+", p + ex.MINUS: "-", p + ex.TIMES: "*", p + ex.OPEN: "(", p + ex.CLOSE: ")",
             p + ex.X: f"({x})"}
    text = " ".join(str(t) if t < p else names[t] for t in tokens)
    return eval(text) % p  # noqa: S307  (our own generated digits and operators)


@pytest.mark.parametrize("name", ["modular_arithmetic", "modular_arithmetic_brackets"])
@pytest.mark.parametrize("length", [1, 2, 5, 13])
def test_modular_arithmetic_agrees_with_python_integer_arithmetic(name, length):
    # reducing modulo p commutes with +, -, *: the exact integer value mod p is the answer
    task, batch = _sample(name, length, 128, modulus=5)
    n = batch.prompt_length - 1
    for row, ans in zip(batch.tokens[:, :n].tolist(), batch.answers()[:, 0].tolist(), strict=True):
        assert ans == _python_value(row, 5)


def test_bracket_expressions_use_brackets_and_every_operator():
    _, batch = _sample("modular_arithmetic_brackets", 15, 256)
    used = set(batch.tokens[:, :15].flatten().tolist())
    assert {5 + ex.PLUS, 5 + ex.MINUS, 5 + ex.TIMES, 5 + ex.OPEN, 5 + ex.CLOSE} <= used


def test_solve_equation_answer_is_the_unique_solution():
    _, batch = _sample("solve_equation", 9, 128)
    for row, ans in zip(batch.tokens.tolist(), batch.answers()[:, 0].tolist(), strict=True):
        expr, target = row[:9], row[10]
        assert row.count(5 + ex.X) == 1 and 5 + ex.TIMES not in expr
        solutions = [x for x in range(5) if _python_value(expr, 5, x) == target]
        assert solutions == [ans]


def test_stack_manipulation_example_from_the_definition():
    # stack 0 1 1 0 (bottom to top), PUSH 1, POP, POP -> 1 1 0 (top to bottom)
    assert final_stack([0, 1, 1, 0, PUSH1, POP, POP], 4) == [1, 1, 0]
    assert final_stack([1, 1, 0, POP, POP, POP, POP], 3) == []  # POP on an empty stack does nothing
    _, batch = _sample("stack_manipulation", 8, 64)
    out = batch.answers()
    assert out.shape == (64, 9)
    eos_at = (out == 6).int().argmax(1)
    assert ((out == 6).sum(1) == 1).all()  # one EOS, then padding only
    for row, e in zip(out.tolist(), eos_at.tolist(), strict=True):
        assert all(t in (0, 1) for t in row[:e]) and all(t == 7 for t in row[e + 1:])


def _operands(row: list[int], op: int, eq: int) -> tuple[str, str, list[int]]:
    i, j = row.index(op), row.index(eq)
    return "".join(map(str, row[:i])), "".join(map(str, row[i + 1:j])), row[j + 1:-1]


@pytest.mark.parametrize("length", [1, 4, 17])
def test_binary_addition_and_multiplication_agree_with_python_integers(length):
    _, batch = _sample("binary_addition", length, 32)
    for row in batch.tokens.tolist():
        a, b, c = _operands(row, 10, 11)
        assert int("".join(map(str, c[::-1])), 2) == int(a, 2) + int(b, 2)
    _, batch = _sample("binary_multiplication", length, 32)
    for row in batch.tokens.tolist():
        a, b, c = _operands(row, 2, 3)
        assert len(c) == len(a) + len(b)
        assert int("".join(map(str, c[::-1])), 2) == int(a, 2) * int(b, 2)


def test_binary_multiplication_bit_depends_only_on_lower_significances():
    task, batch = _sample("binary_multiplication", 6, 64, seed=3)
    deps = batch.dependencies[0]
    sizes = (deps >= 0).sum(1).tolist()
    assert sizes[-1] == 0 and sizes[0] == 2  # EOS: nothing; bit 0: a_0 and b_0
    assert sizes[:-1] == sorted(sizes[:-1])  # k grows along the product


@pytest.mark.parametrize("length", [1, 2, 9, 30])
def test_compute_sqrt_agrees_with_isqrt(length):
    _, batch = _sample("compute_sqrt", length, 64)
    for row in batch.tokens.tolist():
        x = int("".join(map(str, row[:length])), 2)
        s = int("".join(map(str, row[length + 1:-1])), 2)
        assert s == math.isqrt(x) and len(row) == length + 1 + (length + 1) // 2 + 1


def test_copy_like_tasks_by_hand():
    x = np.array([[0, 1, 1, 0, 1]])
    src, _ = make_task("odds_first").align(x)
    assert src.tolist() == [[0, 2, 4, 1, 3]]
    src, deps = make_task("duplicate_string").align(x)
    assert src.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4]] and deps[0][7] == [2]
    task = make_task("interlocked_pairing")
    batch = task.sample(np.random.default_rng(0), 200, 6)
    for row in batch.tokens.tolist():
        x, y = row[:6], row[7:-1]
        a = x.index(1 - x[0])  # the second run starts here
        assert x == [x[0]] * a + [1 - x[0]] * (6 - a)
        assert y == x + [1 - t for t in x]
    with pytest.raises(ConfigError):
        make_task("interlocked_pairing", symbols=3)


def test_delétang_names_of_existing_tasks_keep_their_semantics():
    _, batch = _sample("reverse_string", 7, 16)
    assert int(batch.tokens[:, :7].max()) <= 1
    assert torch.equal(batch.answers()[:, :7], batch.tokens[:, :7].flip(1))
    _, batch = _sample("bucket_sort", 9, 16)
    assert torch.equal(batch.answers()[:, :9], batch.tokens[:, :9].sort(1).values)
    assert int(batch.tokens[:, :9].max()) <= 4


def test_missing_duplicate_answer_is_the_blanked_token_and_ids_couple_the_copies():
    task, batch = _sample("missing_duplicate", 5, 128)
    x = batch.tokens[:, :10]
    blank = (x == task.missing).int().argmax(1)
    assert ((x == task.missing).sum(1) == 1).all()
    other = (blank + 5) % 10
    assert torch.equal(batch.answers()[:, 0], torch.gather(x, 1, other[:, None])[:, 0])
    ids = batch.coupled_ids[0].tolist()
    assert ids[:5] == ids[5:10] == [1, 2, 3, 4, 5]


def test_associative_recall_answers_are_the_stored_values():
    task, batch = _sample("associative_recall", 10, 32)
    for row, ans in zip(batch.tokens.tolist(), batch.answers().tolist(), strict=True):
        store = dict(zip(row[0:20:2], row[1:20:2], strict=True))
        assert len(store) == 10  # distinct keys
        assert ans == [store[q] for q in row[21::2]]
        assert sorted(row[21::2]) == sorted(store)  # every key asked once
    with pytest.raises(ConfigError, match="keys"):
        task.sample(np.random.default_rng(0), 2, 65)


def test_variable_tracking_answer_matches_running_the_program():
    task, batch = _sample("variable_tracking", 12, 64, hops=3)
    for row, ans in zip(batch.tokens.tolist(), batch.answers()[:, 0].tolist(), strict=True):
        env: dict[int, int] = {}
        for i in range(12):
            name, rhs = row[3 * i], row[3 * i + 2]
            env[name] = env[rhs] if rhs >= task.first_name else rhs
        assert row[36] == task.query and env[row[37]] == ans
    deps = batch.dependencies[:, 0]
    assert ((deps >= 0).sum(1) == 2 * 3 + 3).all()  # k = 2 hops + 3, whatever the length
