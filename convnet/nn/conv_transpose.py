"""The transposed convolution layer of decoders and generators, with PyTorch's constructor
arguments, parameter names and initialisation."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .layers import _ConvNd, _pair


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
