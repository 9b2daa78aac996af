"""Softplus and channel-wise dropout."""

from __future__ import annotations

from ..autograd import Function
from ..kernels._checks import xp_of
from ..random import rand_like
from ._nn import _check_p, _masked

__all__ = ["softplus", "dropout1d", "dropout2d"]


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""

    def forward(self, x, beta=1.0, threshold=20.0):
        xp = xp_of(x)
        bx = x * beta
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
        self.save_for_backward(bx, threshold)
        return xp.where(bx > threshold, x, soft).astype(x.dtype, copy=False)

    def backward(self, g):
        bx, threshold = self.saved
        xp = xp_of(g)
        e = xp.exp(-xp.abs(bx))
        sig = xp.where(bx >= 0, 1 / (1 + e), e / (1 + e))
        return g * xp.where(bx > threshold, 1, sig).astype(g.dtype, copy=False)


def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(input, beta=beta, threshold=threshold)


def _channel_dropout(input, p, training, inplace, name, ndim):
    _check_p(p)
    if input.ndim not in (ndim, ndim + 1):
        raise ValueError(f"{name}: expected a {ndim}-D or {ndim + 1}-D input, got shape "
                         f"{input.shape}")
    if not training or p == 0.0:
        return input
    # one draw per (sample, channel): whole feature maps are dropped
    # (C, L) for dropout1d is one unbatched sample; PyTorch reads a 3-D input to
    # dropout2d as (N, C, L)
    lead = 1 if input.ndim == 2 else 2
    shape = input.shape[:lead] + (1,) * (input.ndim - lead)
    keep = rand_like(input._xp.empty(shape)) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = keep.astype(input.dtype) * input.dtype.type(scale)
    return _masked(input, mask, None, inplace)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) (or (C, L)) input with probability p."""
    return _channel_dropout(input, p, training, inplace, "dropout1d", 2)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole feature maps of (N, C, H, W) (or (C, H, W)) input with probability p."""
    return _channel_dropout(input, p, training, inplace, "dropout2d", 3)
