"""Causal self-attention with a position scheme, a preallocated key/value cache, and pattern capture.

- ``KVCache``: keys and values of every layer in buffers preallocated for ``capacity`` tokens, so a
  decoding step writes its slot instead of concatenating (and so copying) every layer's cache.
- ``capture_attention``: a documented hook for analysis. Inside ``with capture_attention(model) as
  patterns:`` every forward pass of the chosen layers also records its attention weights
  ``patterns[layer]`` [B, H, Tq, Tk] (float32, on ``device``), computed in slices of queries so
  that only the result grows with the square of the length. The forward pass itself is unchanged.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lengen.kernels import RotateQKV
from lengen.positions import PositionScheme


@dataclass
class KVCache:
    """Keys and values of every layer for the tokens seen so far, and their position ids.

    ``keys[l]`` / ``values[l]`` are [B, H, S, head_dim] buffers with S >= ``length``; only the first
    ``length`` slots hold data. The first write allocates ``capacity`` slots (at least what it
    writes); a write past the end doubles the buffer. ``ids`` [B, length] are the ids so far.
    """

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    ids: torch.Tensor | None = None
    capacity: int = 0

    @property
    def length(self) -> int:
        return 0 if self.ids is None else int(self.ids.shape[1])

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k``, ``v`` [B, H, t, head_dim] after the cached tokens of ``layer``; return all so far."""
        past, end = self.length, self.length + k.shape[2]
        if layer == len(self.keys):  # this layer's first tokens
            self.keys.append(k.new_empty(*k.shape[:2], max(self.capacity, end), k.shape[3]))
            self.values.append(v.new_empty(*v.shape[:2], max(self.capacity, end), v.shape[3]))
        elif self.keys[layer].shape[2] < end:  # full, or given from elsewhere (maybe expanded): a new buffer
            size = max(end, 2 * self.keys[layer].shape[2])
            for buffers, new in ((self.keys, k), (self.values, v)):
                grown = new.new_empty(*new.shape[:2], size, new.shape[3])
                grown[:, :, :past] = buffers[layer][:, :, :past]
                buffers[layer] = grown
        self.keys[layer][:, :, past:end] = k
        self.values[layer][:, :, past:end] = v
        if past == 0:
            return k, v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class AttentionPatterns(dict[int, torch.Tensor]):
    """{layer: attention weights [B, H, Tq, Tk] of its last forward pass} (see ``capture_attention``)."""

    def __init__(self, device: torch.device | str, chunk: int) -> None:
        super().__init__()
        self.device, self.chunk = torch.device(device), chunk

    def record(self, layer: int, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None,
               is_causal: bool) -> None:
        b, h, tq, _ = q.shape
        tk = k.shape[2]
        out = torch.empty(b, h, tq, tk, dtype=torch.float32, device=self.device)
        past = tk - tq  # query i sits at absolute position past + i
        for lo in range(0, tq, self.chunk):
            hi = min(tq, lo + self.chunk)
            scores = (q[:, :, lo:hi].float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
            if mask is not None:
                scores = scores + mask[..., lo:hi, :].float()
            elif is_causal:
                qi = torch.arange(past + lo, past + hi, device=q.device)[:, None]
                scores = scores.masked_fill(torch.arange(tk, device=q.device)[None, :] > qi, float("-inf"))
            out[:, :, lo:hi] = torch.softmax(scores, dim=-1).to(self.device)
        self[layer] = out


@contextlib.contextmanager
def capture_attention(model: nn.Module, layers: list[int] | None = None, device: torch.device | str = "cpu",
                      chunk: int = 256) -> Iterator[AttentionPatterns]:
    """Record the attention weights of ``layers`` (default all) of ``model`` during the block.

    Weights include the scheme's score bias and the causal mask, exactly what the attention applies
    (dropout aside); they are kept on ``device`` (the CPU by default, so long inputs fit).
    """
    blocks = [m for m in model.modules() if isinstance(m, Attention)]
    chosen = range(len(blocks)) if layers is None else layers
    patterns = AttentionPatterns(device, chunk)
    try:
        for i in chosen:
            blocks[i].capture = patterns
        yield patterns
    finally:
        for block in blocks:
            block.capture = None


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float, fused: bool = True) -> None:
        super().__init__()
        self.n_heads, self.fused = n_heads, fused
        # separate q, k, v products: their backward is faster on the CPU than one fused product's
        # (benchmarks/train_throughput.py); registered in this order, they draw the same initial
        # values as the fused [3 d_model, d_model] matrix did
        if fused:
            self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        else:
            self.q = nn.Linear(d_model, d_model, bias=False)
            self.k = nn.Linear(d_model, d_model, bias=False)
            self.v = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.dropout = dropout
        self.capture: AttentionPatterns | None = None

    def project(self, x: torch.Tensor, ids: torch.Tensor,
                scheme: PositionScheme) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries and keys (rotated by the scheme) and values, each [B, H, T, head_dim]."""
        b, t, d = x.shape
        if self.fused:
            # split and rotate in one autograd step: one gradient buffer, no zero padding (eager only:
            # torch.compile fuses the plain ops below itself, and cannot trace the kernel's out= writes)
            flat = self.qkv(x)  # in autocast's dtype (bf16 on CUDA), which the tables must match
            tables = None if torch.compiler.is_compiling() else scheme.rotation(ids, flat.dtype)
            if tables is not None:
                q, k, v = RotateQKV.apply(flat, *tables, self.n_heads)
                return q, k, v
            qkv = flat.view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
            q, k = scheme.rotate(qkv[:2], ids).unbind(0)  # queries and keys in one pass: half the ops
            return q, k, qkv[2]
        q, k, v = (proj(x).view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for proj in (self.q, self.k, self.v))
        # one at a time: stacking them would copy both (rope's rotation reads strided views as they are and
        # returns contiguous ones; the others get the contiguous copy that the attention kernels had before)
        return scheme.rotate(q, ids).contiguous(), scheme.rotate(k, ids).contiguous(), v

    def forward(
        self,
        x: torch.Tensor,
        ids: torch.Tensor,
        scheme: PositionScheme,
        mask: torch.Tensor | None,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.project(x, ids, scheme)
        # causal without a mask unless this call continues cached keys (then one query sees them all,
        # or hidden() built a mask). A plain bool: a test on shapes would be symbolic under
        # torch.compile(dynamic=True), which breaks the graph at every layer
        is_causal = mask is None and (cache is None or layer >= len(cache.keys))
        if cache is not None:
            k, v = cache.store(layer, k, v)
        if self.capture is not None:
            self.capture.record(layer, q, k, mask, is_causal)
        y = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=None if mask is None else mask.to(q.dtype),
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))
