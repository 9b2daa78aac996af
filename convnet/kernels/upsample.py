"""Nearest and bilinear upsampling."""

from __future__ import annotations

import numpy as np

from . import _checks as ck
from ._boundary import launch

__all__ = [
    "upsample_nearest2d_forward", "upsample_nearest2d_backward", "upsample_bilinear2d_forward",
    "upsample_bilinear2d_backward",
]
#
# PyTorch's rules (``F.interpolate``): ``scales`` are the scale factors the user gave, which
# PyTorch uses for the source coordinates (step 1/scale) instead of in/out when the output
# size came from them; None means the size was given. Nearest: src = min(floor(dst * step),
# in - 1). Bilinear, align_corners=False: src = max((dst + 0.5) * step - 0.5, 0);
# align_corners=True: src = dst * (in - 1) / (out - 1).


def _upsample_scales(scales):
    if scales is None:
        return 0.0, 0.0
    if not (isinstance(scales, (tuple, list)) and len(scales) == 2):
        raise ValueError(f"scales: expected None or a pair (scale_h, scale_w), got {scales!r}")
    out = []
    for v in scales:
        if v is None:
            out.append(0.0)
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"scales: expected numbers, got {scales!r}") from None
        if not (f > 0 and np.isfinite(f)):
            raise ValueError(f"scales: must be positive and finite, got {scales!r}")
        out.append(f)
    return out[0], out[1]


def _upsample_input(name, a, what):
    a = ck.float_array(name, a)
    ck.ndim(name, a, 4, what)
    if min(a.shape) < 1:
        raise ValueError(f"{name}: expected non-empty (N, C, H, W), got shape {tuple(a.shape)}")
    return a


def _upsample_forward(kind, x, output_size, extra, scales, backend):
    x = _upsample_input("x", x, "(N, C, H, W)")
    p, q = ck.pair("output_size", output_size)
    sh, sw = _upsample_scales(scales)
    y = ck.xp_of(x).empty((x.shape[0], x.shape[1], p, q), dtype=x.dtype)
    launch(f"upsample_{kind}2d_forward", backend, x, y, *extra, sh, sw)
    return y


def _upsample_backward(kind, dy, x_shape, extra, scales, backend):
    dy = _upsample_input("dy", dy, "(N, C, P, Q)")
    x_shape = ck.shape4("x_shape", x_shape)
    if tuple(dy.shape[:2]) != tuple(x_shape[:2]):
        raise ValueError(f"dy: batch/channels {tuple(dy.shape[:2])} differ from x_shape's "
                         f"{tuple(x_shape[:2])}")
    sh, sw = _upsample_scales(scales)
    dx = ck.xp_of(dy).empty(x_shape, dtype=dy.dtype)
    launch(f"upsample_{kind}2d_backward", backend, dy, dx, *extra, sh, sw)
    return dx


def upsample_nearest2d_forward(x, output_size, scales=None, *, backend=None):
    """Nearest-neighbour upsampling (or downsampling) to ``output_size`` (P, Q).

    x (N, C, H, W) -> y (N, C, P, Q). ``scales``: the scale factors (sh, sw) when the size
    came from them (PyTorch then maps coordinates with them), else None.
    """
    return _upsample_forward("nearest", x, output_size, (), scales, backend)


def upsample_nearest2d_backward(dy, x_shape, scales=None, *, backend=None):
    """dy (N, C, P, Q) -> dx (N, C, H, W): each input pixel sums the outputs that copied it."""
    return _upsample_backward("nearest", dy, x_shape, (), scales, backend)


def upsample_bilinear2d_forward(x, output_size, align_corners=False, scales=None, *,
                                backend=None):
    """Bilinear interpolation to ``output_size`` (P, Q), PyTorch's coordinates.

    x (N, C, H, W) -> y (N, C, P, Q).
    """
    return _upsample_forward("bilinear", x, output_size, (bool(align_corners),), scales,
                             backend)


def upsample_bilinear2d_backward(dy, x_shape, align_corners=False, scales=None, *,
                                 backend=None):
    """dy (N, C, P, Q) -> dx (N, C, H, W) for :func:`upsample_bilinear2d_forward`."""
    return _upsample_backward("bilinear", dy, x_shape, (bool(align_corners),), scales,
                              backend)
