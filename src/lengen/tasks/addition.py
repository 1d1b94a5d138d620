"""addition: ``a + b = c`` in decimal, operands of different lengths, answer digits in either order.

Layout: ``a (MSB first) + b (MSB first) = c EOS`` where c has n + 1 digits (n: digits of the longer
operand, ``length``; a leading 0 when there is no final carry, so the answer length follows from the
layout). The shorter operand has a digit count drawn per batch from 1..n, and which operand is the
longer is drawn per batch (a batch is one dense tensor). ``pad_operands`` writes it with leading zeros
up to n digits, as Cho et al. do; the numbers still have different lengths, but every significance
then has a digit in both operands.

Coupled ids (Cho et al. 2024): digits of equal significance s share the id s + 1, in both operands and
in the answer; EOS has id 0. With ``id_layout: local`` (the default) the two operators are placed so
that every answer prediction reads the digits at its own id and one id step further in the answer's
order, at any length:
- ``=`` takes the id one step before the first answer digit's (0 when the ones digit comes first,
  n + 2 when the carry digit comes first), so the first digit is read like all others;
- ``+`` marks the end of the walk: with the ones digit first it shares the carry digit's id n + 1, so
  the prediction of the carry digit (and then of EOS) reads this marker instead of having to notice
  that no operand digit is left; with the carry digit first it has id 0, one step past the ones digit.
``id_layout: legacy`` is the layout of earlier lengen versions (``+`` 0, ``=`` n + 1): the first digit's
source is then n ids from ``=``, a distance that grows with n. ``id_layout: cho`` is Cho et al. 2024's
(their public data code): ``+`` and ``=`` both take the id one step before the ones digit's (0), and
with the carry digit first ``=`` takes n + 2. It differs from ``local`` only in ``+`` with the ones digit
first (the carry digit and EOS are then predicted with no marker at their ids) and equals it otherwise.
EOS keeps id 0 in every layout (lengen's convention, not taken from their code).
All ids are computable from the layout, so coupling here is never an oracle.

Dependency sets use fixed slots so that the answer can be recomputed from them alone:
- ``reverse_answer`` (least significant digit first, the default): c_j depends on a_j, b_j, a_{j-1},
  b_{j-1} and the previous answer digit c_{j-1} (which fixes the carry into j-1): five tokens, sparse.
- most significant digit first: c_j depends on every digit of significance <= j (the carry chain),
  slots ``2s`` (a_s) and ``2s + 1`` (b_s): dense.
A slot is -1 where the digit does not exist (the shorter operand), which counts as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.registry import param
from lengen.tasks.base import Batch, Task, make_batch, register_task

PLUS, EQUALS, EOS = 10, 11, 12
ID_LAYOUTS = ("local", "legacy", "cho")


def _digits(rng: np.random.Generator, batch: int, n: int, base: int = 10) -> np.ndarray:
    """Random n-digit numbers as digit arrays, least significant first, no leading zero (n > 1)."""
    d = rng.integers(0, base, size=(batch, n))
    if n > 1:
        d[:, -1] = rng.integers(1, base, size=batch)
    return d


def _all_carry(rng: np.random.Generator, batch: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two n-digit numbers whose sum carries into every column: the carry chain spans the whole answer."""
    a = rng.integers(0, 10, size=(batch, n))
    a[:, 0] = rng.integers(1, 10, size=batch)  # ones: a_0 + b_0 >= 10
    b = 9 - a
    b[:, 0] = 10 - a[:, 0] + rng.integers(0, a[:, 0])  # 10 - a_0 .. 9
    if n > 1:  # no leading zeros: the top digits are 1..8 and sum to 9
        a[:, -1] = rng.integers(1, 9, size=batch)
        b[:, -1] = 9 - a[:, -1]
    else:
        a[:, 0] = rng.integers(1, 10, size=batch)
        b[:, 0] = 10 - a[:, 0] + rng.integers(0, a[:, 0])
    return a, b


@register_task("addition")
@dataclass
class Addition(Task):
    """a + b = c, digits of equal significance coupled."""

    reverse_answer: bool = param(True, "write the answer least significant digit first")
    pad_operands: bool = param(False, "write the shorter operand with leading zeros up to the longer "
                                      "one's length (Cho et al. 2024): every significance then has two digits")
    id_layout: str = param("local", "coupled ids of '+' and '=': 'local' (each answer digit is read one id "
                                    "step from the token before it, see the module doc), 'legacy' or 'cho' "
                                    "(Cho et al. 2024: '+' and '=' one id before the ones digit)")
    operands: str = param("mixed", "'mixed': the shorter operand has 1..n digits; 'exact': both have exactly n "
                                   "digits (Cho et al.'s test set); 'all_carry': both n digits and a carry "
                                   "into every column (ones digits sum to >= 10, every other column to 9)")

    multi_token: ClassVar[bool] = True
    ids_from_layout: ClassVar[bool] = True
    version: ClassVar[int] = 1  # 1: id_layout local became the default
    base: ClassVar[int] = 10  # binary_addition subclasses with 2 (digit tokens 0..base-1, same operator ids)

    @classmethod
    def legacy_args(cls, version: int) -> dict[str, Any]:
        return {"id_layout": "legacy"} if version < 1 else {}

    def __post_init__(self) -> None:
        if self.id_layout not in ID_LAYOUTS:
            raise ConfigError(f"task addition: id_layout must be one of {', '.join(ID_LAYOUTS)}, got "
                              f"{self.id_layout!r}")
        if self.operands not in ("mixed", "exact", "all_carry"):
            raise ConfigError(f"task addition: operands must be 'mixed', 'exact' or 'all_carry', got "
                              f"{self.operands!r}")

    @property
    def vocab_size(self) -> int:
        return 13

    def token_names(self) -> list[str]:
        return [str(i) for i in range(10)] + ["+", "=", "$"]

    def max_position_id(self, length: int, ids: str = "plain") -> int:
        return length + 3 if ids == "coupled" else 3 * length + 4

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> Batch:
        self.check_length(length)
        n = length
        if self.operands == "mixed":
            short = int(rng.integers(1, n + 1))
            na, nb = (n, short) if rng.random() < 0.5 else (short, n)
            a, b = _digits(rng, batch, na, self.base), _digits(rng, batch, nb, self.base)  # least significant first
        else:
            na = nb = n
            a, b = (_digits(rng, batch, n, self.base), _digits(rng, batch, n, self.base)) \
                if self.operands == "exact" else _all_carry(rng, batch, n)
        pa, pb = np.zeros((batch, n + 1), np.int64), np.zeros((batch, n + 1), np.int64)
        pa[:, :na], pb[:, :nb] = a, b
        if self.pad_operands:  # leading zeros; the numbers and the sum are unchanged
            a, b, na, nb = pa[:, :n], pb[:, :n], n, n
        c = np.zeros((batch, n + 1), np.int64)
        carry = np.zeros(batch, np.int64)
        for s in range(n + 1):
            total = pa[:, s] + pb[:, s] + carry
            c[:, s], carry = total % self.base, total // self.base
        order = np.arange(n + 1) if self.reverse_answer else np.arange(n, -1, -1)  # significance per answer slot
        p = na + nb + 2  # prompt length
        tokens = np.concatenate([a[:, ::-1], np.full((batch, 1), PLUS), b[:, ::-1], np.full((batch, 1), EQUALS),
                                 c[:, order], np.full((batch, 1), EOS)], axis=1)
        if self.id_layout == "legacy":
            plus, equals = 0, n + 1
        elif self.id_layout == "cho":
            plus, equals = 0, (0 if self.reverse_answer else n + 2)
        else:
            plus, equals = (n + 1, 0) if self.reverse_answer else (0, n + 2)
        coupled = np.concatenate([np.arange(na, 0, -1), [plus], np.arange(nb, 0, -1), [equals], order + 1, [0]])
        a_at = [na - 1 - s if s < na else -1 for s in range(n + 1)]  # token index of a_s
        b_at = [na + nb - s if s < nb else -1 for s in range(n + 1)]
        rows: list[list[int]] = []
        if self.reverse_answer:
            for j in range(n + 1):
                prev = [a_at[j - 1], b_at[j - 1], p + j - 1] if j > 0 else [-1, -1, -1]
                rows.append([a_at[j], b_at[j], *prev])
        else:
            for sig in order.tolist():
                rows.append([x for s in range(n + 1) for x in ((a_at[s], b_at[s]) if s <= sig else (-1, -1))])
        width = max(len(r) for r in rows)
        deps = np.full((n + 2, width), -1, np.int64)
        for i, r in enumerate(rows):
            deps[i, : len(r)] = r
        answer_index = np.arange(p - 1, p + n + 1)
        return make_batch(tokens, np.broadcast_to(answer_index, (batch, n + 2)),
                          np.broadcast_to(deps, (batch, *deps.shape)), prompt_length=p,
                          coupled_ids=np.broadcast_to(coupled, (batch, coupled.shape[0])))

    def recompute_answer(self, batch: Batch) -> torch.Tensor:
        deps = batch.dependencies
        vals = torch.gather(batch.tokens[:, None, :].expand(-1, deps.shape[1], -1), 2, deps.clamp(min=0))
        vals = torch.where(deps >= 0, vals, 0)
        if self.reverse_answer:
            aj, bj, ap, bp, cp = vals.unbind(-1)
            carry_prev = (cp - ap - bp) % self.base  # the carry into j-1, read off the previous answer digit
            carry = (ap + bp + carry_prev >= self.base).long()
            out = (aj + bj + carry) % self.base
        else:
            # slot pairs (a_s, b_s); answer a (of n + 2 with EOS) is the digit of significance n - a
            pairs = vals.view(*vals.shape[:2], -1, 2)
            n_answers = vals.shape[1]
            j = (n_answers - 2 - torch.arange(n_answers))[None, :]
            carry = torch.zeros(vals.shape[:2], dtype=torch.long)
            digit = torch.zeros_like(carry)
            for s in range(pairs.shape[2]):
                total = pairs[:, :, s, 0] + pairs[:, :, s, 1] + carry
                digit = torch.where(j == s, total % self.base, digit)
                carry = total // self.base
            out = digit
        out[:, -1] = EOS
        return out
