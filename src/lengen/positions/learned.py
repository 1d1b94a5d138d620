"""learned: a learned absolute embedding per position id, optionally with a random start offset."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lengen.positions.base import Dims, PositionScheme, random_offsets, register_scheme
from lengen.registry import param


@register_scheme("learned")
class LearnedAbsolute(PositionScheme):
    """Learned absolute position embeddings (GPT-2); random_offset shifts ids during training."""

    @dataclass
    class Params:
        max_position: int = param(2048, "size of the embedding table (largest id + 1)")
        random_offset: bool = param(False, "during training, shift each sample's ids by a random offset "
                                    "so that every row of the table is trained")

    def __init__(self, dims: Dims, params: Params | None = None) -> None:
        super().__init__(dims, params)
        self.params: LearnedAbsolute.Params = self.params
        self.table = nn.Embedding(self.params.max_position, dims.d_model)
        nn.init.normal_(self.table.weight, std=0.02)

    def max_position(self) -> int:
        return int(self.params.max_position)

    def id_table(self) -> nn.Embedding:
        return self.table

    def prepare_ids(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.training and self.params.random_offset:
            return random_offsets(ids, self.params.max_position, generator)
        return ids

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        self.check_ids(ids)
        return self.table(ids)
