"""nn.Embedding with PyTorch's constructor arguments, parameter name and initialisation."""

from __future__ import annotations

import numpy as np

from ..functional._embedding import embedding
from . import init
from .module import Module, Parameter


class Embedding(Module):
    """A learned table of ``num_embeddings`` vectors of ``embedding_dim`` values, looked up
    by integer index; weights ~ N(0, 1) as in PyTorch, ``padding_idx``'s row zero and never
    updated."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None,
                 dtype=np.float32):
        super().__init__()
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(f"num_embeddings, embedding_dim: must be >= 1, got "
                             f"{num_embeddings}, {embedding_dim}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx: must be in [-{num_embeddings}, "
                                 f"{num_embeddings}), got {padding_idx}")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0

    def forward(self, x):
        return embedding(x, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
