"""A decoder-only transformer whose position scheme is a pluggable module.

Pre-norm blocks, fused QKV projection, PyTorch's scaled_dot_product_attention (no loops over heads
or tokens). The forward pass calls the same scheme hooks whatever the scheme is: ``prepare_ids`` is
left to the caller (trainer, evaluator, generator) because randomized schemes must rewrite a whole
sequence's ids once, not once per decoding step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lengen.errors import ConfigError
from lengen.heads.pointer import CountPointer
from lengen.positions import SCHEMES, Dims, PositionScheme, make_scheme

NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")


@dataclass
class ModelConfig:
    vocab_size: int = 0  # filled in from the task when 0
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None  # default: 4 d_model (gelu) or the Llama-style 8/3 d_model (swiglu)
    norm: str = "layernorm"
    mlp: str = "gelu"
    position: str = "nope"
    position_args: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.0
    tie_embeddings: bool = False
    # Predictive Position Coupling: a second head predicting the position id of the next token
    position_head: bool = False
    position_classes: int | None = None  # ids the head can predict (None: the scheme's max_position)
    # score each id by the similarity of a projection of the hidden state to that id's row of the
    # scheme's learned table (an ordered, shared encoding of ids) instead of a separate output row
    position_head_tied: bool = False
    # "classes": a classifier over absolute id classes. "pointer": score every prompt token as the
    # source of the next token's id (dot product of a projected hidden state with the token's key plus
    # a learned vector per clipped relative coupled-id distance); the predicted id is the best prompt token's id, so
    # no absolute id class is needed and the scheme may have no id table (rope, t5_bias, ...)
    position_head_kind: str = "classes"
    pointer_max_distance: int = 16  # pointer: forward id distances beyond this share one bias
    pointer_max_back: int | None = None  # pointer: backward distances beyond this share one (None: same)
    # pointer: "exact" learns one vector per clipped distance; "interpolated" learns vectors at the
    # anchor distances 0, +-1, +-2, +-3, +-4, +-6, +-8, +-12, +-16, ... (up to the clips) and interpolates
    # linearly between them, so rarely seen distances share what their neighbours learned
    pointer_distance: str = "exact"
    # "counts" (lengen.heads.pointer): no per-distance parameter at all; the row scores prompt tokens by
    # content plus the number of row-chosen candidate tokens between, before and after them in id space,
    # so every distance is scored by the same few parameters (pointer_max_distance/back are then unused)
    pointer_gates: int = 2  # counts: candidate classes a row can count
    pointer_feeds_token: bool = True  # pointer: the token head also reads the pointed-at prompt states
    # pointer: what prompt tokens are scored (and read) by: their final hidden states ("hidden") or
    # their token embeddings alone ("embed": the same for every length, so nothing drifts with length)
    pointer_keys: str = "hidden"

    def validate(self) -> None:
        for name in ("d_model", "n_layers", "n_heads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model: {name} must be >= 1, got {getattr(self, name)}")
        if self.d_ff is not None and self.d_ff < 1:
            raise ConfigError(f"model: d_ff must be >= 1, got {self.d_ff}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"model: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.norm not in NORMS:
            raise ConfigError(f"model: unknown norm {self.norm!r}; known: {', '.join(NORMS)}")
        if self.mlp not in MLPS:
            raise ConfigError(f"model: unknown mlp {self.mlp!r}; known: {', '.join(MLPS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model: dropout must be in [0, 1), got {self.dropout}")
        SCHEMES.get_class(self.position)
        if self.position_head_kind not in ("classes", "pointer"):
            raise ConfigError(f"model: position_head_kind must be 'classes' or 'pointer', got "
                              f"{self.position_head_kind!r}")
        if self.position_head_kind == "pointer" and self.position_head_tied:
            raise ConfigError("model: position_head_tied applies to position_head_kind 'classes' only")
        if self.pointer_distance not in ("exact", "interpolated", "counts"):
            raise ConfigError(f"model: pointer_distance must be 'exact', 'interpolated' or 'counts', got "
                              f"{self.pointer_distance!r}")
        if self.pointer_gates < 1:
            raise ConfigError(f"model: pointer_gates must be >= 1, got {self.pointer_gates}")
        if self.pointer_keys not in ("hidden", "embed"):
            raise ConfigError(f"model: pointer_keys must be 'hidden' or 'embed', got {self.pointer_keys!r}")
        if self.pointer_max_distance < 1 or (self.pointer_max_back is not None and self.pointer_max_back < 1):
            raise ConfigError(f"model: pointer_max_distance and pointer_max_back must be >= 1, got "
                              f"{self.pointer_max_distance}, {self.pointer_max_back}")
        if self.position_classes is not None and self.position_classes < 2:
            raise ConfigError(f"model: position_classes must be >= 2, got {self.position_classes}")

    @property
    def ff_width(self) -> int:
        if self.d_ff is not None:
            return self.d_ff
        if self.mlp == "swiglu":
            return 64 * math.ceil(8 * self.d_model / 3 / 64)
        return 4 * self.d_model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pointer_anchors(clip: int) -> list[int]:
    """0, 1, 2, 3, 4, 6, 8, 12, 16, 24, ... below ``clip``, then ``clip`` (the pointer's anchor distances)."""
    out, a = [0], 1
    while a < clip:
        out.append(a)
        a = a + 1 if a < 4 else a + (a // 2 if (a & (a - 1)) == 0 else a // 3)
    return out + [clip]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.d_model) if cfg.norm == "rmsnorm" else nn.LayerNorm(cfg.d_model)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        width = cfg.ff_width
        self.up = nn.Linear(cfg.d_model, 2 * width if self.swiglu else width, bias=False)
        self.down = nn.Linear(width, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.swiglu:
            gate, value = h.chunk(2, dim=-1)
            return self.down(F.silu(gate) * value)
        return self.down(F.gelu(h))


@dataclass
class KVCache:
    """Keys and values of every layer for the tokens seen so far, and their position ids."""

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    ids: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.ids is None else int(self.ids.shape[1])


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

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
        qkv = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = scheme.rotate(qkv[:2], ids).unbind(0)  # queries and keys in one pass: half the ops
        v = qkv[2]
        # causal without a mask unless this call continues cached keys (then one query sees them all,
        # or hidden() built a mask). A plain bool: a test on shapes would be symbolic under
        # torch.compile(dynamic=True), which breaks the graph at every layer
        is_causal = mask is None and (cache is None or layer >= len(cache.keys))
        if cache is not None:
            if layer < len(cache.keys):
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
                cache.keys[layer], cache.values[layer] = k, v
            else:
                cache.keys.append(k)
                cache.values.append(v)
        y = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=None if mask is None else mask.to(q.dtype),
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = make_norm(cfg), make_norm(cfg)
        self.attn = Attention(cfg)
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
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.position_head: nn.Module | None = None
        self.position_classes = 0
        self.pointer_key: nn.Linear | None = None
        self.pointer_value: nn.Linear | None = None
        self.pointer_bias: nn.Embedding | None = None
        if cfg.position_head and cfg.position_head_kind == "pointer" and cfg.pointer_distance == "counts":
            self.position_head = CountPointer(cfg.d_model, cfg.pointer_gates)
            if cfg.pointer_feeds_token:
                self.pointer_value = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        elif cfg.position_head and cfg.position_head_kind == "pointer":
            self.position_head = nn.Linear(cfg.d_model, cfg.d_model, bias=False)  # pointer queries
            self.pointer_key = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
            back = cfg.pointer_max_back or cfg.pointer_max_distance
            # one learned vector per clipped relative distance, added to the keys (Shaw et al. 2018):
            # the query decides how much each distance counts
            anchors = [-a for a in reversed(pointer_anchors(back)[1:])] + pointer_anchors(cfg.pointer_max_distance)
            interpolated = cfg.pointer_distance == "interpolated"
            self.register_buffer("pointer_anchors", torch.tensor(anchors, dtype=torch.float32) if interpolated
                                 else None, persistent=False)
            self.pointer_bias = nn.Embedding(len(anchors) if interpolated else back + cfg.pointer_max_distance + 1,
                                             cfg.d_model)
            if cfg.pointer_feeds_token:
                self.pointer_value = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        elif cfg.position_head:
            classes = cfg.position_classes or self.positions.max_position()
            if classes is None:
                raise ConfigError(f"model: position_head needs position_classes (scheme {cfg.position} has no "
                                  f"max_position)")
            table = self.positions.id_table()
            if cfg.position_head_tied and table is None:
                raise ConfigError(f"model: position_head_tied needs a scheme with a learned id table, not "
                                  f"{cfg.position}")
            self.position_classes = table.num_embeddings if isinstance(table, nn.Embedding) and \
                cfg.position_head_tied else classes
            self.position_head = nn.Linear(cfg.d_model, cfg.d_model if cfg.position_head_tied else classes,
                                           bias=False)
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

    def position_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """PPC: logits over the position id of the next token, [..., position_classes]."""
        if self.position_head is None:
            raise ConfigError("model: this model has no position head (set model.position_head: true)")
        if self.pointer:
            raise ConfigError("model: a pointer position head scores prompt tokens; use pointer_scores")
        table = self.positions.id_table()
        if self.cfg.position_head_tied and table is not None:
            return self.position_head(hidden) @ table.weight.T
        return self.position_head(hidden)

    @property
    def pointer(self) -> bool:
        """True for a PPC model whose position head points at prompt tokens."""
        return self.cfg.position_head and self.cfg.position_head_kind == "pointer"

    def pointer_memory(self, prompt_hidden: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """What a pointer head scores and reads for each prompt token, [B, P, d_model]."""
        return self.embed(prompt) if self.cfg.pointer_keys == "embed" else prompt_hidden

    def pointer_scores(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: torch.Tensor,
                       prompt_ids: torch.Tensor) -> torch.Tensor:
        """Pointer PPC: [B, A, P] scores of "the next token's id is prompt token p's id" for each row.

        ``memory`` [B, P, d_model] is ``pointer_memory`` of the prompt.
        """
        if isinstance(self.position_head, CountPointer):
            return self.position_head(rows, row_ids, memory, prompt_ids)
        if self.position_head is None or self.pointer_key is None or self.pointer_bias is None:
            raise ConfigError("model: pointer_scores needs position_head_kind 'pointer'")
        q, k = self.position_head(rows), self.pointer_key(memory)
        ahead, back = self.cfg.pointer_max_distance, self.cfg.pointer_max_back or self.cfg.pointer_max_distance
        rel = (prompt_ids[:, None, :] - row_ids[:, :, None]).clamp(-back, ahead)  # [B, A, P]
        content = q @ k.transpose(1, 2)
        anchors = self.pointer_anchors
        if not isinstance(anchors, torch.Tensor):
            relative = (q[:, :, None, :] * self.pointer_bias(rel + back)).sum(-1)
        else:  # linear interpolation between the two anchors around each distance
            hi = torch.searchsorted(anchors, rel.float().contiguous(), right=False).clamp(1, len(anchors) - 1)
            lo = hi - 1
            w = ((rel.float() - anchors[lo]) / (anchors[hi] - anchors[lo])).clamp(0, 1)
            table = q @ self.pointer_bias.weight.T  # [B, A, anchors]: the query against every anchor vector
            relative = torch.lerp(table.gather(2, lo), table.gather(2, hi), w.to(table.dtype))
        return (content + relative) / math.sqrt(q.shape[-1])

    def answer_outputs(self, rows: torch.Tensor, row_ids: torch.Tensor, memory: torch.Tensor,
                       prompt_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token logits [B, A, vocab] and PPC position scores for hidden ``rows`` whose ids are ``row_ids``.

        Position scores are over id classes [B, A, position_classes] (``classes``), over prompt tokens
        [B, A, P] (``pointer``; ``memory`` is ``pointer_memory`` of the prompt), or None without a
        position head. A pointer that feeds the token head adds the pointer-weighted memory
        (projected) to the rows before the token head.
        """
        if self.position_head is None:
            return self.head(rows), None
        if not self.pointer:
            return self.head(rows), self.position_logits(rows)
        scores = self.pointer_scores(rows, row_ids, memory, prompt_ids)
        if self.pointer_value is not None:
            read = torch.softmax(scores.float(), dim=-1).to(memory.dtype) @ memory
            rows = rows + self.pointer_value(read)
        return self.head(rows), scores

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int) -> int:
        """Forward-pass FLOPs per token (matmuls only, 2 per multiply-add), attention included."""
        c = self.cfg
        mlp_mults = (3 if c.mlp == "swiglu" else 2) * c.d_model * c.ff_width
        per_layer = 4 * c.d_model * c.d_model + mlp_mults + seq_len * c.d_model  # QK^T and AV, causal half
        return 2 * (c.n_layers * per_layer + c.d_model * c.vocab_size)
