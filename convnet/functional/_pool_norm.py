"""Ops the model zoo needs: adaptive average pooling (AlexNet, VGG, GoogLeNet, ResNet
heads), local response normalisation (AlexNet), constant padding (and through it max
pooling with ``ceil_mode``, as GoogLeNet uses). Written once for NumPy and CuPy through
the array module ``xp``; the even-split case of adaptive pooling runs on the pooling kernel.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np

from ..autograd import Function
from ..kernels._checks import xp_of
from ._nn import avg_pool2d
from ._ops import as_f32, compute_dtype

# --------------------------------------------------------------------------- padding


class ConstantPad(Function):
    def forward(self, x, widths=(), value=0.0):
        xp = xp_of(x)
        shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, widths))
        keep = tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape, widths))
        out = xp.full(shape, value, dtype=x.dtype)
        out[keep] = x
        self.save_for_backward(keep)
        return out

    def backward(self, g):
        (keep,) = self.saved
        return xp_of(g).ascontiguousarray(g[keep])


def pad(input, pad, mode="constant", value=0.0):
    """Pad with a constant, PyTorch's order: ``pad = (last_lo, last_hi, prev_lo, prev_hi, ...)``
    gives the widths of the last axis first. Widths must be >= 0."""
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: expected an even number of widths, at most 2 per axis of the "
                         f"{input.ndim}-D input, got {pad}")
    try:
        pad = tuple(operator.index(p) for p in pad)
    except TypeError:
        raise TypeError(f"pad: expected ints, got {pad}") from None
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative widths (cropping) are not supported, got {pad}")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return ConstantPad.apply(input, widths=tuple(widths), value=value)


def _ceil_extra(size, k, s, p):
    """Rows/columns of padding past the end that make floor-mode pooling give PyTorch's
    ceil-mode output size (the last window must start inside the input or left padding)."""
    out = -(-(size + 2 * p - k) // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return max((out - 1) * s + k - (size + 2 * p), 0)


def max_pool2d_ceil(input, kernel_size, stride=None, padding=0):
    """Max pooling with PyTorch's ``ceil_mode=True`` output size: the input is padded with
    -inf past its bottom/right edge so the floor-mode kernel covers the partial windows."""
    from ._nn import max_pool2d

    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    if input.ndim != 4:
        raise ValueError(f"max_pool2d: expected input (N, C, H, W), got shape {input.shape}")
    (kh, kw), (ph, pw) = pair(kernel_size), pair(padding)
    sh, sw = pair(kernel_size if stride is None else stride)
    eh = _ceil_extra(input.shape[2], kh, sh, ph)
    ew = _ceil_extra(input.shape[3], kw, sw, pw)
    if eh or ew:
        input = pad(input, (0, ew, 0, eh), value=-math.inf)
    return max_pool2d(input, kernel_size, stride, padding)


# --------------------------------------------------------------------------- adaptive pooling


def _output_pair(output_size, in_hw):
    """``output_size`` (int, or pair with None meaning the input's size) as (oh, ow)."""
    pair = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(pair) != 2:
        raise ValueError(f"output_size: expected an int or a pair (h, w), got {output_size!r}")
    out = []
    for v, n in zip(pair, in_hw):
        if v is None:
            out.append(n)
            continue
        if not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"output_size: expected positive ints (or None), got "
                             f"{output_size!r}")
        out.append(int(v))
    return out[0], out[1]


def _bin_matrix(size, out, dtype, xp):
    """(out, size) averaging matrix of PyTorch's adaptive bins: row i averages
    [floor(i*size/out), ceil((i+1)*size/out))."""
    i = np.arange(out)
    start = (i * size) // out
    end = -(-((i + 1) * size) // out)
    j = np.arange(size)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return xp.asarray(inside / (end - start)[:, None], dtype=dtype)


class AdaptiveAvgPool2d(Function):
    """y = Ph x Pw^T per (n, c) map, Ph (OH, H) and Pw (OW, W) the bin-averaging matrices;
    the gradient is Ph^T dy Pw."""

    def forward(self, x, output_size=(1, 1)):
        xp = xp_of(x)
        (h, w), (oh, ow) = x.shape[-2:], output_size
        # 16-bit maps: float32 products (NumPy's bfloat16 product is float32), one rounding
        ct = compute_dtype(x.dtype)
        ph, pw = _bin_matrix(h, oh, ct, xp), _bin_matrix(w, ow, ct, xp)
        self.save_for_backward(ph, pw)
        return xp.matmul(xp.matmul(ph, as_f32(x)), pw.T).astype(x.dtype, copy=False)

    def backward(self, g):
        ph, pw = self.saved
        xp = xp_of(g)
        return xp.matmul(xp.matmul(ph.T, as_f32(g)), pw).astype(g.dtype, copy=False)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed ``output_size`` (int or (h, w); None keeps that axis) over
    (N, C, H, W) or (C, H, W) input, with PyTorch's bins: output i along an axis of length
    n averages [floor(i*n/out), ceil((i+1)*n/out)). Sizes that divide evenly run as a plain
    average pool (kernel = stride = n/out)."""
    if input.ndim not in (3, 4):
        raise ValueError(f"adaptive_avg_pool2d: expected input (N, C, H, W) or (C, H, W), got "
                         f"shape {input.shape}")
    h, w = input.shape[-2:]
    oh, ow = _output_pair(output_size, (h, w))
    if input.ndim == 4 and h % oh == 0 and w % ow == 0:
        return avg_pool2d(input, (h // oh, w // ow))
    return AdaptiveAvgPool2d.apply(input, output_size=(oh, ow))


# --------------------------------------------------------------------------- LRN


def _channel_window_sum(a, before, after):
    """out[:, c] = sum of a[:, c - before .. c + after] (zero outside the channels)."""
    xp = xp_of(a)
    c = a.shape[1]
    padded = xp.zeros((a.shape[0], c + before + after) + a.shape[2:], dtype=a.dtype)
    padded[:, before:before + c] = a
    out = padded[:, 0:c].copy()
    for o in range(1, before + after + 1):
        out += padded[:, o:o + c]
    return out


class LocalResponseNorm(Function):
    """y_c = x_c / d_c^beta, d_c = k + alpha/size * sum_{j in window(c)} x_j^2, the window
    running from c - size//2 to c + (size-1)//2.

    dx_i = g_i d_i^-beta - 2 alpha beta / size * x_i * sum_{c: i in window(c)} g_c x_c d_c^(-beta-1)
    where the channels c whose window holds i run from i - (size-1)//2 to i + size//2.
    """

    def forward(self, x, size=5, alpha=1e-4, beta=0.75, k=1.0):
        # a 16-bit input is normalised in float32 (the statistics of a norm), rounded once
        before, after = size // 2, (size - 1) // 2
        x32 = as_f32(x)
        d = _channel_window_sum(x32 * x32, before, after)
        d *= alpha / size
        d += k
        scale = d ** -beta
        self.save_for_backward(x, d, scale, size, alpha, beta)
        return (x32 * scale).astype(x.dtype, copy=False)

    def backward(self, g):
        x, d, scale, size, alpha, beta = self.saved
        x32, g32 = as_f32(x), as_f32(g)
        t = g32 * x32 * scale / d
        s = _channel_window_sum(t, (size - 1) // 2, size // 2)
        return (g32 * scale - (2 * alpha * beta / size) * x32 * s).astype(g.dtype, copy=False)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels (AlexNet), PyTorch's formula:
    ``x / (k + alpha/size * sum of x^2 over `size` neighbouring channels)^beta``, the window
    zero-padded by size//2 channels before and (size-1)//2 after. Input (N, C, ...)."""
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected input (N, C, ...) with at least 3 "
                         f"dims, got shape {input.shape}")
    if not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    return LocalResponseNorm.apply(input, size=int(size), alpha=float(alpha), beta=float(beta),
                                   k=float(k))
