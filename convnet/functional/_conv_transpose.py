"""The transposed convolution ("deconvolution") of decoders and generators, on the
convolution kernels, with PyTorch's argument order and output-size rule."""

from __future__ import annotations

from .. import kernels as K
from ..autograd import Function


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
