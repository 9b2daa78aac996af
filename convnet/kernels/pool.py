"""Max and average pooling (PyTorch's rules)."""

from __future__ import annotations

import numpy as np

from . import _checks as ck
from ._boundary import launch

__all__ = [
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
]


def _pool_geometry(x_shape, kernel_size, stride, padding):
    n, c, h, w = x_shape
    kh, kw = ck.pair("kernel_size", kernel_size)
    sh, sw = ck.pair("stride", kernel_size if stride is None else stride)
    ph, pw = ck.pair("padding", padding, positive=False)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(
            f"padding: must be at most half the kernel size, got padding {(ph, pw)} "
            f"for kernel {(kh, kw)}"
        )
    p, q = ck.conv_output_hw((h, w), (kh, kw), (sh, sw), (ph, ph, pw, pw), (1, 1), "kernel_size")
    return (n, c, p, q), (kh, kw, sh, sw, ph, pw)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, *, backend=None):
    """x (N, C, H, W) -> (y, indices), both (N, C, P, Q); indices are int64 ``h * W + w``."""
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, C, H, W)")
    y_shape, args = _pool_geometry(x.shape, kernel_size, stride, padding)
    xp = ck.xp_of(x)
    y = xp.empty(y_shape, dtype=x.dtype)
    indices = xp.empty(y_shape, dtype=np.int64)
    launch("max_pool2d_forward", backend, x, y, indices, *args)
    return y, indices


def max_pool2d_backward(dy, indices, x_shape, *, backend=None):
    """dy and indices (N, C, P, Q) from the forward pass -> dx (N, C, H, W)."""
    dy = ck.float_array("dy", dy)
    ck.ndim("dy", dy, 4, "(N, C, P, Q)")
    x_shape = ck.shape4("x_shape", x_shape)
    if tuple(dy.shape[:2]) != tuple(x_shape[:2]):
        raise ValueError(f"dy: batch/channels {tuple(dy.shape[:2])} differ from x_shape's "
                         f"{tuple(x_shape[:2])}")
    if not hasattr(indices, "dtype") or indices.dtype != np.int64:
        raise TypeError(f"indices: expected the int64 array from max_pool2d_forward, got "
                        f"{getattr(indices, 'dtype', type(indices).__name__)}")
    if tuple(indices.shape) != tuple(dy.shape):
        raise ValueError(f"indices: shape {tuple(indices.shape)} differs from dy's "
                         f"{tuple(dy.shape)}")
    indices = ck.xp_of(indices).ascontiguousarray(indices)
    dx = ck.xp_of(dy).empty(x_shape, dtype=dy.dtype)
    launch("max_pool2d_backward", backend, dy, indices, dx)
    return dx


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True, *,
                       backend=None):
    """x (N, C, H, W) -> y (N, C, P, Q), the mean of each window."""
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, C, H, W)")
    y_shape, args = _pool_geometry(x.shape, kernel_size, stride, padding)
    y = ck.xp_of(x).empty(y_shape, dtype=x.dtype)
    launch("avg_pool2d_forward", backend, x, y, *args, bool(count_include_pad))
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True, *, backend=None):
    """dy (N, C, P, Q) -> dx (N, C, H, W) for :func:`avg_pool2d_forward`."""
    dy = ck.float_array("dy", dy)
    x_shape = ck.shape4("x_shape", x_shape)
    y_shape, args = _pool_geometry(x_shape, kernel_size, stride, padding)
    dy = ck.output_grad(dy, y_shape, dy.dtype)
    dx = ck.xp_of(dy).empty(x_shape, dtype=dy.dtype)
    launch("avg_pool2d_backward", backend, dy, dx, *args, bool(count_include_pad))
    return dx


