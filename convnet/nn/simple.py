"""Small layers: Unflatten, Softplus, channel-wise dropout."""

from __future__ import annotations

from .. import functional as F
from .layers import Dropout
from .module import Module

__all__ = ["Unflatten", "Softplus", "Dropout1d", "Dropout2d"]


class Unflatten(Module):
    """Expand axis ``dim`` into ``unflattened_size`` (the inverse of Flatten)."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        d = self.dim % x.ndim
        return x.reshape(*x.shape[:d], *self.unflattened_size, *x.shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Softplus(Module):
    """log(1 + exp(beta x)) / beta (linear above ``threshold``)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Dropout1d(Dropout):
    """Zeroes whole channels of (N, C, L) input in training."""

    _fn = staticmethod(F.dropout1d)


class Dropout2d(Dropout):
    """Zeroes whole feature maps of (N, C, H, W) input in training."""

    _fn = staticmethod(F.dropout2d)
