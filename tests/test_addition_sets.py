"""The addition test sets of the peers (``operands``): exact n-digit operands and all-carry sums."""

import numpy as np
import pytest
import torch

from lengen.errors import ConfigError
from lengen.tasks import make_task
from lengen.tasks.addition import EQUALS, PLUS


def _operands(batch, n):
    """The two operands of every sample as integers (MSB-first digit strings before '+' and '=')."""
    out = []
    for row in batch.tokens.tolist():
        plus, equals = row.index(PLUS), row.index(EQUALS)
        out.append((row[:plus], row[plus + 1:equals]))
    return out


@pytest.mark.parametrize("operands", ["exact", "all_carry"])
@pytest.mark.parametrize("n", [1, 2, 9, 40])
def test_both_operands_have_exactly_n_digits_and_the_answer_is_their_sum(operands, n):
    task = make_task("addition", operands=operands)
    batch = task.sample(np.random.default_rng(n), 64, n)
    assert torch.equal(task.recompute_answer(batch), batch.answers())
    for a, b in _operands(batch, n):
        assert len(a) == len(b) == n
        assert n == 1 or (a[0] != 0 and b[0] != 0)  # no leading zeros: exactly n digits
    if operands == "all_carry":  # the sum is 10^n + (a_0 + b_0 - 10): a carry out of every column
        for (a, b), answer in zip(_operands(batch, n), batch.answers().tolist(), strict=True):
            x, y = int("".join(map(str, a))), int("".join(map(str, b)))
            assert x + y >= 10 ** n and (x + y) % 10 ** n < 10
            digits = answer[:-1]  # least significant first, then EOS
            assert digits[1:n] == [0] * (n - 1) and digits[n] == 1


def test_mixed_operands_are_the_default_and_unchanged():
    a = make_task("addition").sample(np.random.default_rng(3), 8, 12)
    b = make_task("addition", operands="mixed").sample(np.random.default_rng(3), 8, 12)
    assert torch.equal(a.tokens, b.tokens)


def test_unknown_operands_is_a_config_error():
    with pytest.raises(ConfigError, match="operands"):
        make_task("addition", operands="short")
