"""Interpolation (nearest, bilinear) for decoders and generators, with PyTorch's names,
arguments and output-size rules (``F.interpolate``)."""

from __future__ import annotations

import math

from .. import kernels as K
from ..autograd import Function


class Interpolate(Function):
    def forward(self, x, mode="nearest", size=(1, 1), align_corners=False, scales=None):
        self.save_for_backward(x.shape, mode, align_corners, scales)
        if mode == "nearest":
            return K.upsample_nearest2d_forward(x, size, scales)
        return K.upsample_bilinear2d_forward(x, size, align_corners, scales)

    def backward(self, g):
        shape, mode, align_corners, scales = self.saved
        if mode == "nearest":
            return K.upsample_nearest2d_backward(g, shape, scales)
        return K.upsample_bilinear2d_backward(g, shape, align_corners, scales)


INTERPOLATE_MODES = ("nearest", "bilinear")


def _two(name, v, kind):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected one value or a pair (h, w) for 4-D input, "
                             f"got {v!r}")
        vals = tuple(v)
    else:
        vals = (v, v)
    try:
        return tuple(kind(u) for u in vals)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected {kind.__name__}s, got {v!r}") from None


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """Resize (N, C, H, W) maps, PyTorch's ``F.interpolate`` for ``mode`` 'nearest' or
    'bilinear'. Give ``size`` (int or (h, w)) or ``scale_factor`` (number or pair; the output
    is floor(H * scale) and the scale itself maps the coordinates unless
    ``recompute_scale_factor=True``). ``align_corners`` (bilinear only, default False)
    maps the corner pixels' centres onto each other instead of the pixel areas' edges.
    """
    if mode not in INTERPOLATE_MODES:
        raise ValueError(f"mode: expected one of {INTERPOLATE_MODES}, got {mode!r}")
    if input.ndim != 4:
        raise ValueError(f"input: expected (N, C, H, W) (2-D spatial interpolation), got "
                         f"shape {input.shape}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners: only the bilinear mode takes it; leave it None for "
                         "'nearest'")
    if (size is None) == (scale_factor is None):
        raise ValueError("size, scale_factor: give exactly one of them, got "
                         f"size={size!r}, scale_factor={scale_factor!r}")
    h, w = input.shape[2:]
    if size is not None:
        out = _two("size", size, int)
        scales = None
    else:
        factors = _two("scale_factor", scale_factor, float)
        if not all(f > 0 and math.isfinite(f) for f in factors):
            raise ValueError(f"scale_factor: must be positive and finite, got {scale_factor!r}")
        out = (math.floor(h * factors[0]), math.floor(w * factors[1]))
        scales = None if recompute_scale_factor else factors
    if min(out) < 1:
        raise ValueError(f"size: the output would be {out[0]}x{out[1]} for input {h}x{w}; "
                         "it must be at least 1x1")
    return Interpolate.apply(input, mode=mode, size=out,
                             align_corners=bool(align_corners), scales=scales)
