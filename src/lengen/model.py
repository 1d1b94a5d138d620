"""A decoder-only transformer whose position scheme is a pluggable module.

Pre-norm blocks, PyTorch's scaled_dot_product_attention (no loops over heads or tokens;
``lengen.attention``: the key/value cache and the attention-pattern hook ``capture_attention``).
The forward pass calls the same scheme hooks whatever the scheme is: ``prepare_ids`` is left to the
caller (``lengen.position_ids``) because randomized schemes must rewrite a whole sequence's ids once,
not once per decoding step. Output heads beyond the token head are built from the config by the
registered builders of ``lengen.heads``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lengen.attention import Attention, KVCache, capture_attention
from lengen.errors import ConfigError
from lengen.heads import HEADS, OutputHead, Prompt, TokenHead
from lengen.kernels import RMSNormFunction
from lengen.model_config import ModelConfig
from lengen.positions import Dims, PositionScheme, make_scheme

__all__ = ["KVCache", "ModelConfig", "Transformer", "capture_attention"]

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.rms_norm's values; a closed-form backward (lengen.kernels), faster than autograd's on the CPU
        return RMSNormFunction.apply(x, self.weight, self.eps)


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.d_model) if cfg.norm == "rmsnorm" else nn.LayerNorm(cfg.d_model)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        width = cfg.ff_width
        # SwiGLU's gate and up are always two products: one fused [2 w, d] product is slower on the CPU
        # (benchmarks/train_throughput.py, docs/model_internals.md). Gate then up: the initial values of
        # the fused [gate; up] matrix that older checkpoints hold (upgrade_state_dict splits it).
        if self.swiglu:
            self.gate = nn.Linear(cfg.d_model, width, bias=False)
        self.up = nn.Linear(cfg.d_model, width, bias=False)
        self.down = nn.Linear(width, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.swiglu:
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = make_norm(cfg), make_norm(cfg)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout, cfg.fused_projections)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, ids: torch.Tensor, scheme: PositionScheme,
                mask: torch.Tensor | None, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), ids, scheme, mask, cache, layer))
        return x + self.drop(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        if cfg.vocab_size < 1:
            raise ConfigError("model: vocab_size must be >= 1")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.positions = make_scheme(cfg.position, Dims(cfg.d_model, cfg.n_heads), **cfg.position_args)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg)
        self.head = TokenHead(cfg.d_model, cfg.vocab_size)
        # further output heads, built by the registered builders that the config asks for (lengen.heads)
        self.extra_heads = nn.ModuleDict()
        for name, build in HEADS.items():
            head = build(cfg, self.positions)
            if head is not None:
                self.extra_heads[name] = head
        self._register_load_state_dict_pre_hook(self._upgrade_keys)
        self._init_weights()
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if name.startswith("positions.") or p.dim() < 2:
                continue
            std = 0.02 / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("out.weight", "down.weight")) else 0.02
            nn.init.normal_(p, std=std)

    def prepare_ids(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The scheme's id rewrite (random offsets, randomized ids); call once per sequence."""
        return self.positions.prepare_ids(ids, generator)

    def hidden(self, tokens: torch.Tensor, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Final hidden states [B, T, d_model]. With a cache, ``tokens`` continue the cached ones."""
        b, t = tokens.shape
        past = cache.length if cache is not None else 0
        k_ids = ids if cache is None or cache.ids is None else torch.cat([cache.ids, ids], dim=1)
        mask = self.positions.bias(ids, k_ids)
        if mask is not None or (past > 0 and t > 1):
            # key j is visible to query i (absolute index past + i) when j <= past + i
            qi = torch.arange(past, past + t, device=tokens.device)[:, None]
            kj = torch.arange(past + t, device=tokens.device)[None, :]
            causal = torch.zeros(t, past + t, device=tokens.device).masked_fill(kj > qi, float("-inf"))
            mask = causal if mask is None else mask + causal
        x = self.embed(tokens)
        pos = self.positions.embed(ids)
        if pos is not None:
            x = x + pos.to(x.dtype)
        for layer, block in enumerate(self.blocks):
            x = block(x, ids, self.positions, mask, cache, layer)
        if cache is not None:
            cache.ids = k_ids
        return self.norm(x)

    def forward(self, tokens: torch.Tensor, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Next-token logits [B, T, vocab]."""
        return self.head(self.hidden(tokens, ids, cache))

    def id_head(self) -> OutputHead | None:
        """The output head that predicts the next token's position id, if the model has one."""
        return next((h for h in self.heads().values() if h.predicts_ids), None)

    def heads(self) -> dict[str, OutputHead]:
        """The output heads beyond the token head by name, in the order they run."""
        return {name: h for name, h in self.extra_heads.items() if isinstance(h, OutputHead)}

    def prompt_memory(self, prompt_hidden: torch.Tensor, prompt: torch.Tensor,
                      prompt_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """What each output head reads of the prompt [B, P] (computed once per sequence)."""
        context = Prompt(prompt_hidden, prompt, prompt_ids, self.embed)
        return {name: head.memory(context) for name, head in self.heads().items()}

    def answer_outputs(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: dict[str, torch.Tensor],
                       prompt_ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Token logits [B, A, vocab] and every other head's outputs for hidden ``rows`` with ids ``row_ids``.

        The other heads run first: a head may change the rows the token head reads (one may add what it
        reads of the prompt). ``memory`` is ``prompt_memory`` of the prompt, whose ids are ``prompt_ids``.
        """
        outputs = {}
        for name, head in self.heads().items():
            rows, outputs[name] = head.outputs(rows, row_ids, memory[name], prompt_ids)
        return self.head(rows), outputs

    def upgrade_state_dict(self, weights: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
        """Convert, in place, weights saved in an older layout: output heads before they were modules,
        a fused SwiGLU [gate; up] product (always two products since), fused q/k/v products into a
        model with separate ones."""
        for name, head in self.heads().items():
            for old, new in head.legacy_keys().items():
                if prefix + old in weights:
                    weights[f"{prefix}extra_heads.{name}.{new}"] = weights.pop(prefix + old)
        for i in range(self.cfg.n_layers):
            block = f"{prefix}blocks.{i}."
            if not self.cfg.fused_projections and block + "attn.qkv.weight" in weights:
                parts = weights.pop(block + "attn.qkv.weight").chunk(3)
                weights |= {f"{block}attn.{p}.weight": w for p, w in zip("qkv", parts, strict=True)}
            up = weights.get(block + "mlp.up.weight")
            if self.cfg.mlp == "swiglu" and up is not None and up.shape[0] == 2 * self.cfg.ff_width:
                weights[block + "mlp.gate.weight"], weights[block + "mlp.up.weight"] = up.chunk(2)
        return weights

    def _upgrade_keys(self, state_dict: dict[str, torch.Tensor], prefix: str, *args: Any) -> None:
        self.upgrade_state_dict(state_dict, prefix)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int) -> int:
        """Forward-pass FLOPs per token (matmuls only, 2 per multiply-add), attention included."""
        c = self.cfg
        mlp_mults = (3 if c.mlp == "swiglu" else 2) * c.d_model * c.ff_width
        per_layer = 4 * c.d_model * c.d_model + mlp_mults + seq_len * c.d_model  # QK^T and AV, causal half
        return 2 * (c.n_layers * per_layer + c.d_model * c.vocab_size)
