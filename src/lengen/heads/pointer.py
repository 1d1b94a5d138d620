"""A PPC pointer whose dependence on id distance is defined at every distance (``pointer_distance: counts``).

The older pointer (``exact`` / ``interpolated`` in ``model.py``) adds a learned vector per clipped id
distance, so at gaps longer than training it scores with parameters training never moved. This head has
no per-distance parameter at all. Prompt token j is scored for answer row t by

    q_t . k_j  +  sum_f (q_t . w_f) * feature_f(t, j)

where the features are
- the side of j in id space relative to t: ahead, behind, same id, exactly one id ahead, one behind
  (five indicators: every one of them occurs at every training length);
- for each of ``gates`` soft candidate classes c_g(t, j) = sigmoid(q_t . G_g k_j) chosen by the row:
  whether candidates lie strictly between t and j in id space (ahead and behind), before j and after j
  (soft counts, saturated at 1). "The nearest candidate ahead" is the candidate with none between, and
  "the first candidate of the input" the one with none before, however many non-candidates separate
  them.

So the score is a fixed, bounded function of which tokens lie where, with as many parameters at
distance 1000 as at distance 1; a non-candidate gap of any length costs nothing. This is the theory's sparse dependence made
explicit: given the previous output's id, the next id is found by content among few candidates.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SIDE_FEATURES = 5  # ahead, behind, same, +1, -1
COUNT_FEATURES = 4  # per gate: between (ahead), between (behind), before j, after j


def count_features(gate: torch.Tensor, row_ids: torch.Tensor, prompt_ids: torch.Tensor) -> torch.Tensor:
    """Soft candidate counts saturated at 1, [B, A, G, 4, P]: between t and j (ahead, behind), before j,
    after j.

    ``gate`` [B, A, G, P] is each row's candidate weight of every prompt token; ``row_ids`` [B, A] and
    ``prompt_ids`` [B, P] are coupled ids. Counts are over ids, so tokens sharing an id count together
    and the prompt may be in any order.
    """
    order = prompt_ids.argsort(dim=1)
    sorted_ids = prompt_ids.gather(1, order)
    b, a, g, p = gate.shape
    sorted_gate = gate.gather(3, order[:, None, None, :].expand(b, a, g, p))
    cum = torch.cat([sorted_gate.new_zeros(b, a, g, 1), sorted_gate.cumsum(3)], dim=3)  # cum[..., i]: first i
    prompt_ids = prompt_ids.contiguous()
    below_j = torch.searchsorted(sorted_ids, prompt_ids, right=False)  # tokens with id < id_j
    upto_j = torch.searchsorted(sorted_ids, prompt_ids, right=True)  # tokens with id <= id_j
    below_t = torch.searchsorted(sorted_ids, row_ids.contiguous(), right=False)
    upto_t = torch.searchsorted(sorted_ids, row_ids.contiguous(), right=True)

    def at(index: torch.Tensor) -> torch.Tensor:  # cum at a per-token index [B, P] -> [B, A, G, P]
        return cum.gather(3, index[:, None, None, :].expand(b, a, g, p))

    def at_row(index: torch.Tensor) -> torch.Tensor:  # cum at a per-row index [B, A] -> [B, A, G, 1]
        return cum.gather(3, index[:, :, None, None].expand(b, a, g, 1))

    before, through = at(below_j), at(upto_j)
    d = (prompt_ids[:, None, :] - row_ids[:, :, None])[:, :, None, :]  # [B, A, 1, P]
    ahead = torch.where(d > 0, (before - at_row(upto_t)).clamp(min=0), 0.0)
    behind = torch.where(d < 0, (at_row(below_t) - through).clamp(min=0), 0.0)
    after = cum[..., -1:] - through
    # saturated at 1: "none" against "some" is what nearest/first/last needs, and a bounded feature cannot
    # grow with the input (a raw count of tokens before j would, and did: 0 exact match at 4x on some seeds)
    return -torch.expm1(-torch.stack([ahead, behind, before, after], dim=3))


class CountPointer(nn.Module):
    """Scores [B, A, P] of "the next token's id is prompt token j's id" (see the module doc)."""

    def __init__(self, d_model: int, gates: int = 2) -> None:
        super().__init__()
        self.gates = gates
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.gate_key = nn.Linear(d_model, gates * d_model, bias=False)
        # one vector per feature: the row's query decides how much each feature counts
        self.feature = nn.Linear(d_model, SIDE_FEATURES + COUNT_FEATURES * gates, bias=False)

    def forward(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: torch.Tensor,
                prompt_ids: torch.Tensor) -> torch.Tensor:
        q, k = self.query(rows), self.key(memory)
        b, a, dm = q.shape
        p = k.shape[1]
        scale = 1 / math.sqrt(dm)
        gk = self.gate_key(memory).view(b, p, self.gates, dm)
        # counts in float32: under bf16 autocast a sum of gates past 256 would round to steps of 2 or more
        gate = torch.sigmoid(torch.einsum("bad,bpgd->bagp", q, gk).float() * scale)
        d = (prompt_ids[:, None, :] - row_ids[:, :, None])  # [B, A, P]
        side = torch.stack([d > 0, d < 0, d == 0, d == 1, d == -1], dim=2).float()  # [B, A, 5, P]
        counts = count_features(gate, row_ids, prompt_ids).flatten(2, 3)  # [B, A, 4G, P]
        features = torch.cat([side, counts], dim=2)
        weights = self.feature(q).float()  # [B, A, F]
        relative = (weights[:, :, :, None] * features).sum(2)
        return ((q @ k.transpose(1, 2)).float() + relative) * scale
