"""PoSE: positional skip-wise training (Zhu et al., ICLR 2024), as a training-time id rewrite.

The training window is cut into ``chunks`` contiguous pieces at random points; chunk 0 keeps its ids
and chunk i > 0 is shifted by a skip u_i, with 0 <= u_1 <= u_2 <= ... drawn uniformly so that no id
reaches ``target_length``. Inside a chunk ids stay consecutive (relative distances are the real ones);
across chunks they jump, so a model trained on short windows sees the ids and distances of windows up
to ``target_length`` long. The tokens are not changed: the text stays contiguous while its ids jump
(the authors' code may also skip text to match; we keep it contiguous).

It is not a scheme: ``TrainConfig.pose_target_length`` applies it in ``train`` to the ids before the
scheme's own ``prepare_ids``, so it composes with every scheme that reads position ids (for NoPE it
changes nothing), and evaluation never sees it.
"""

from __future__ import annotations

import torch

from lengen.errors import ConfigError


def pose_ids(ids: torch.Tensor, target_length: int, chunks: int = 2,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """PoSE-shifted copies of ``ids`` [B, T] (each row non-decreasing, e.g. 0..T-1): every id < ``target_length``."""
    if chunks < 1:
        raise ConfigError(f"PoSE: chunks must be >= 1, got {chunks}")
    b, t = ids.shape
    room = target_length - 1 - ids.amax(dim=1)  # the largest total skip that keeps ids < target_length
    if bool((room < 0).any()):
        raise ConfigError(f"PoSE: the training window uses id {int(ids.max())}, not below the target "
                          f"length {target_length}")
    n = min(chunks, t)
    if n == 1:
        return ids
    device = ids.device
    # n - 1 distinct cut points in 1 .. t-1: every chunk gets at least one token
    keys = torch.rand(b, t - 1, generator=generator).to(device)
    cuts = keys.topk(n - 1, dim=1).indices.sort(dim=1).values + 1  # [B, n-1]
    skips = (torch.rand(b, n - 1, generator=generator).to(device) * (room[:, None] + 1).float()).long()
    skips = torch.minimum(skips.sort(dim=1).values, room[:, None])  # non-decreasing, float rounding guarded
    chunk = (torch.arange(t, device=device)[None, :, None] >= cuts[:, None, :]).sum(-1)  # [B, T] chunk index
    shift = torch.cat([torch.zeros(b, 1, dtype=torch.long, device=device), skips], dim=1)
    return ids + torch.gather(shift, 1, chunk)
