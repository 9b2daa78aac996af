"""Layers that make feature maps larger, for decoders and generators: ConvTranspose2d and
Upsample, with PyTorch's constructor arguments, parameter names and initialisation."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional._upsample import INTERPOLATE_MODES
from .layers import _ConvNd, _pair
from .module import Module


class ConvTranspose2d(_ConvNd):
    """Transposed convolution; weight (in_channels, out_channels, kH, kW) as in PyTorch.

    Output size: (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1,
    so ``ConvTranspose2d(c, c2, 4, stride=2, padding=1)`` doubles H and W (DCGAN's block)
    and ``(3, stride=2, padding=1, output_padding=1)`` does too.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, dtype=np.float32):
        if groups != 1:
            raise ValueError(f"groups: only groups=1 is supported, got {groups!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, _pair(padding),
                         dilation, bias, dtype, transposed=True)
        self.output_padding = _pair(output_padding)

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, 1, self.dilation)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}"
                + (f", output_padding={self.output_padding}"
                   if self.output_padding != (0, 0) else "")
                + (f", dilation={self.dilation}" if self.dilation != (1, 1) else "")
                + ("" if self.bias is not None else ", bias=False"))


class Upsample(Module):
    """Resize feature maps by ``scale_factor`` or to ``size``; ``mode`` 'nearest' or
    'bilinear' (PyTorch's ``nn.Upsample``; see :func:`convnet.functional.interpolate`)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        if mode not in INTERPOLATE_MODES:
            raise ValueError(f"mode: expected one of {INTERPOLATE_MODES}, got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError("size, scale_factor: give exactly one of them")
        if mode == "nearest" and align_corners is not None:
            raise ValueError("align_corners: only the bilinear mode takes it")
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.scale_factor = (float(scale_factor) if isinstance(scale_factor, (int, float))
                             else scale_factor)
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else \
            f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}" + (
            f", align_corners={self.align_corners}" if self.align_corners is not None else "")


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear with ``align_corners=True``, as PyTorch's (deprecated there) layer."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "bilinear", align_corners=True)
