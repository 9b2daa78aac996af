"""Embedding lookup (PyTorch's ``F.embedding``): rows of a table picked by integer indices,
e.g. a class label turned into a learned vector for a conditional generator."""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..autograd import Function
from ..kernels._checks import xp_of


class Embedding(Function):
    def forward(self, idx, weight, padding_idx=None):
        self.save_for_backward(idx, weight.shape, padding_idx)
        return weight[idx]

    def backward(self, g):
        idx, shape, padding_idx = self.saved
        xp = xp_of(g)
        dw = xp.zeros(shape, dtype=g.dtype)
        flat, rows = idx.reshape(-1), g.reshape(-1, shape[1])
        K.scatter_add(dw, flat, rows)  # repeated indices add up
        if padding_idx is not None:
            dw[padding_idx] = 0
        return None, dw


def embedding(input, weight, padding_idx=None):
    """Rows of ``weight`` (num_embeddings, dim) at the integer ``input`` indices (any
    shape) -> (*input.shape, dim). The gradient accumulates into the rows used, except
    ``padding_idx``'s (which stays fixed)."""
    data = getattr(input, "data", input)
    if not np.issubdtype(np.dtype(data.dtype), np.integer):
        raise TypeError(f"input: expected integer indices, got dtype {data.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"weight: expected (num_embeddings, dim), got shape {weight.shape}")
    n = weight.shape[0]
    if data.size and (int(data.min()) < 0 or int(data.max()) >= n):
        raise ValueError(f"input: indices must be in [0, {n}), got values in "
                         f"[{int(data.min())}, {int(data.max())}]")
    if padding_idx is not None:
        padding_idx = int(padding_idx) % n if -n <= int(padding_idx) < n else None
        if padding_idx is None:
            raise ValueError(f"padding_idx: must be in [-{n}, {n})")
    return Embedding.apply(input, weight, padding_idx=padding_idx)
