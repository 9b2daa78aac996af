"""1-D convolution and pooling over (N, C, L) sequences: they run on the 2-D kernels with
the input viewed as (N, C, 1, L) and the windows as (1, k)."""

from __future__ import annotations

import numbers

from ._nn import avg_pool2d, conv2d, max_pool2d
from ._ops import cat

__all__ = ["conv1d", "max_pool1d", "avg_pool1d"]


def _single(name, v):
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f"{name}: expected an int or a 1-tuple, got {v!r}")
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {v!r}")
    return int(v)


def _check_3d(fn, input):
    if input.ndim != 3:
        raise ValueError(f"{fn}: expected input (N, C, L), got shape {input.shape}")


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation. input (N, C, L), weight (K, C/groups, k), bias (K,) ->
    (N, K, L'). padding: int, "same" or "valid"; ``groups`` splits the channels into
    independent convolutions (``groups=C`` is depthwise)."""
    _check_3d("conv1d", input)
    if weight.ndim != 3:
        raise ValueError(f"conv1d: expected weight (K, C/groups, k), got shape {weight.shape}")
    g = _single("groups", groups)
    c, k = input.shape[1], weight.shape[0]
    if g < 1 or c % g or k % g or weight.shape[1] * g != c:
        raise ValueError(f"conv1d: groups={groups} must divide the {c} input and {k} output "
                         f"channels, with weight (K, C/groups, k); got weight {weight.shape}")
    pad = padding if isinstance(padding, str) else (0, _single("padding", padding))
    geometry = ((1, _single("stride", stride)), pad, (1, _single("dilation", dilation)))
    x4, w4 = input.unsqueeze(2), weight.unsqueeze(2)
    if g == 1:
        return conv2d(x4, w4, bias, *geometry).squeeze(2)
    # grouped: one convolution per group of channels, outputs side by side
    ci, co = c // g, k // g
    parts = [conv2d(x4[:, i * ci:(i + 1) * ci], w4[i * co:(i + 1) * co],
                    None if bias is None else bias[i * co:(i + 1) * co], *geometry)
             for i in range(g)]
    return cat(parts, dim=1).squeeze(2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    _check_3d("max_pool1d", input)
    if dilation != 1 or return_indices:
        raise ValueError("max_pool1d: dilation != 1 and return_indices are not supported")
    k = _single("kernel_size", kernel_size)
    s = k if stride is None else _single("stride", stride)
    y = max_pool2d(input.unsqueeze(2), (1, k), (1, s), (0, _single("padding", padding)),
                   ceil_mode)
    return y.squeeze(2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    _check_3d("avg_pool1d", input)
    if ceil_mode:
        raise ValueError("avg_pool1d: ceil_mode=True is not supported")
    k = _single("kernel_size", kernel_size)
    s = k if stride is None else _single("stride", stride)
    y = avg_pool2d(input.unsqueeze(2), (1, k), (1, s), (0, _single("padding", padding)),
                   count_include_pad)
    return y.squeeze(2)
