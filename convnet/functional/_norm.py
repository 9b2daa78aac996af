"""Layer and group normalisation: each normalises rows of a reshaped view of the input to
zero mean and unit (biased) variance, then applies a per-element (layer) or per-channel
(group) affine map. Written once for NumPy and CuPy through the array module ``xp``."""

from __future__ import annotations

import numbers

from ..autograd import Function
from ..kernels._checks import xp_of
from ..tensor import Tensor
from ._ops import as_f32

__all__ = ["layer_norm", "group_norm"]


def _normalize_rows(x2, eps):
    """(M, D) -> xhat (M, D) and 1/std (M, 1), over the last axis (in float32 for a
    16-bit input: the statistics need its range and its additions)."""
    xp = xp_of(x2)
    x2 = as_f32(x2)
    mean = x2.mean(axis=1, keepdims=True)
    centred = x2 - mean
    rstd = 1.0 / xp.sqrt((centred * centred).mean(axis=1, keepdims=True) + eps)
    return centred * rstd, rstd


def _normalize_rows_backward(gh, xhat, rstd):
    """d(loss)/dx from d(loss)/dxhat for rows normalised by :func:`_normalize_rows`."""
    return rstd * (gh - gh.mean(axis=1, keepdims=True)
                   - xhat * (gh * xhat).mean(axis=1, keepdims=True))


class LayerNorm(Function):
    """y = xhat * w + b, xhat normalised over the trailing ``n`` axes."""

    def forward(self, x, w, b, n=1, eps=1e-5):
        d = 1
        for s in x.shape[x.ndim - n:]:
            d *= s
        xhat, rstd = _normalize_rows(x.reshape(-1, d), eps)
        self.save_for_backward(x.shape, xhat, rstd, w)
        return (xhat.reshape(x.shape) * w + b).astype(x.dtype, copy=False)

    def backward(self, g):
        shape, xhat, rstd, w = self.saved
        g2 = g.reshape(xhat.shape)
        dx = dw = db = None
        if self.needs_grad[0]:
            dx = _normalize_rows_backward(g2 * w.reshape(1, -1), xhat, rstd).reshape(shape)
        if self.needs_grad[1]:
            dw = (g2 * xhat).sum(axis=0).reshape(w.shape)
        if self.needs_grad[2]:
            db = g2.sum(axis=0).reshape(w.shape)
        return dx, dw, db


def _affine_defaults(input, shape, weight, bias):
    xp = input._xp
    if weight is None:
        weight = Tensor._wrap(xp.ones(shape, dtype=input.dtype), False)
    if bias is None:
        bias = Tensor._wrap(xp.zeros(shape, dtype=input.dtype), False)
    return weight, bias


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing ``normalized_shape`` axes (Ba et al. 2016)."""
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (int(normalized_shape),)
    normalized_shape = tuple(normalized_shape)
    n = len(normalized_shape)
    if n == 0 or input.shape[input.ndim - n:] != normalized_shape or n > input.ndim:
        raise ValueError(f"layer_norm: normalized_shape {normalized_shape} must be the last "
                         f"axes of the input, got input shape {input.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != normalized_shape:
            raise ValueError(f"layer_norm: {name} must have shape {normalized_shape}, got "
                             f"{t.shape}")
    weight, bias = _affine_defaults(input, normalized_shape, weight, bias)
    return LayerNorm.apply(input, weight, bias, n=n, eps=eps)


class GroupNorm(Function):
    """x (N, C, *) in G groups of C/G channels, each (sample, group) normalised; then
    y = xhat * w[c] + b[c]."""

    def forward(self, x, w, b, groups=1, eps=1e-5):
        n, c = x.shape[:2]
        xhat, rstd = _normalize_rows(x.reshape(n * groups, -1), eps)
        cshape = (1, c) + (1,) * (x.ndim - 2)
        self.save_for_backward(x.shape, xhat, rstd, w, cshape)
        y = xhat.reshape(x.shape) * w.reshape(cshape) + b.reshape(cshape)
        return y.astype(x.dtype, copy=False)

    def backward(self, g):
        shape, xhat, rstd, w, cshape = self.saved
        axes = (0,) + tuple(range(2, len(shape)))
        dx = dw = db = None
        if self.needs_grad[0]:
            gh = (g * w.reshape(cshape)).reshape(xhat.shape)
            dx = _normalize_rows_backward(gh, xhat, rstd).reshape(shape)
        if self.needs_grad[1]:
            dw = (g * xhat.reshape(shape)).sum(axis=axes)
        if self.needs_grad[2]:
            db = g.sum(axis=axes)
        return dx, dw, db


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation (Wu & He 2018) of (N, C, *) input."""
    if input.ndim < 2:
        raise ValueError(f"group_norm: expected input (N, C, *), got shape {input.shape}")
    c = input.shape[1]
    if not isinstance(num_groups, numbers.Integral) or num_groups < 1 or c % num_groups:
        raise ValueError(f"group_norm: num_groups must divide the {c} channels, got "
                         f"{num_groups!r}")
    weight, bias = _affine_defaults(input, (c,), weight, bias)
    return GroupNorm.apply(input, weight, bias, groups=int(num_groups), eps=eps)
