"""The model section of a configuration (``lengen.model.Transformer`` builds from it).

The flat ``position_head*`` / ``pointer_*`` fields configure PPC's output heads (``lengen.heads.ppc``,
which validates them): every experiment file keeps its keys.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from lengen.errors import ConfigError
from lengen.heads import VALIDATORS
from lengen.positions import SCHEMES

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
    # one [q; k; v] product per layer, as every documented figure was trained (SwiGLU's gate and up are
    # always two products). False: three products; the initial values are the same either way, trained
    # numbers differ in the last bits (a sum of three input gradients rounds differently from one
    # product), so the default keeps the figures exact. Both are as fast as transformers' Llama on the
    # CPU (benchmarks/train_throughput.py, docs/model_internals.md)
    fused_projections: bool = True
    # Predictive Position Coupling (lengen.heads.ppc, which validates these): a second head predicting
    # the position id of the next token
    position_head: bool = False
    position_classes: int | None = None  # ids the head can predict (None: the scheme's max_position)
    # score each id by the similarity of a projection of the hidden state to that id's row of the
    # scheme's learned table (an ordered, shared encoding of ids) instead of a separate output row
    position_head_tied: bool = False
    position_head_kind: str = "classes"  # "classes" or "pointer" (scores prompt tokens as id sources)
    pointer_max_distance: int = 16  # pointer: forward id distances beyond this share one bias
    pointer_max_back: int | None = None  # pointer: backward distances beyond this share one (None: same)
    pointer_distance: str = "exact"  # pointer: "exact", "interpolated" (between anchors) or "counts"
    pointer_gates: int = 2  # counts: candidate classes a row can count
    pointer_feeds_token: bool = True  # pointer: the token head also reads the pointed-at prompt states
    pointer_keys: str = "hidden"  # pointer: prompt tokens scored by final hidden states or "embed"

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
        for check in VALIDATORS:  # the output heads' own fields
            check(self)

    @property
    def ff_width(self) -> int:
        if self.d_ff is not None:
            return self.d_ff
        if self.mlp == "swiglu":
            return 64 * math.ceil(8 * self.d_model / 3 / 64)
        return 4 * self.d_model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
