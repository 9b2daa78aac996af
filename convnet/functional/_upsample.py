"""Ops that make feature maps larger, for decoders and generators: the transposed
convolution (on the convolution kernels) and interpolation (nearest, bilinear), with
PyTorch's names, arguments and output-size rules."""

from __future__ import annotations

import math

from .. import kernels as K
from ..autograd import Function

# --------------------------------------------------------------------------- conv transpose


class ConvTranspose2d(Function):
    def forward(self, x, w, *maybe_b, stride=1, padding=0, output_padding=0, dilation=1):
        b = maybe_b[0] if maybe_b else None
        geo = (stride, padding, output_padding, dilation)
        self.save_for_backward(x, w, b is not None, geo)
        return K.conv_transpose2d_forward(x, w, b, *geo)

    def backward(self, g):
        x, w, has_b, geo = self.saved
        dx = dw = db = None
        if self.needs_grad[0]:
            dx = K.conv_transpose2d_backward_data(g, w, x.shape, *geo)
        if self.needs_grad[1]:
            dw = K.conv_transpose2d_backward_weight(g, x, w.shape, *geo)
        if has_b and self.needs_grad[2]:
            db = K.conv2d_backward_bias(g)
        return (dx, dw, db) if has_b else (dx, dw)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed convolution ("deconvolution"), PyTorch's argument order.

    input (N, Cin, H, W), weight (Cin, Cout, R, S), bias (Cout,) -> (N, Cout, Ho, Wo) with
    Ho = (H - 1) * stride - 2 * padding + dilation * (R - 1) + output_padding + 1.
    Only ``groups=1``.
    """
    if groups != 1:
        raise ValueError(f"groups: only groups=1 is supported, got {groups!r}")
    args = (input, weight) if bias is None else (input, weight, bias)
    return ConvTranspose2d.apply(*args, stride=stride, padding=padding,
                                 output_padding=output_padding, dilation=dilation)


# --------------------------------------------------------------------------- interpolation


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
