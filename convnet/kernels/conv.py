"""Convolution and transposed convolution (which runs on the convolution's kernels)."""

from __future__ import annotations

from . import _checks as ck
from ._boundary import launch

__all__ = [
    "conv2d_output_shape", "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight",
    "conv2d_backward_bias", "conv_transpose2d_output_shape", "conv_transpose2d_forward",
    "conv_transpose2d_backward_data", "conv_transpose2d_backward_weight",
]


def _conv_geometry(x_shape, w_shape, stride, padding, dilation):
    n, c, h, w = x_shape
    k, cw, r, s = w_shape
    if cw != c:
        raise ValueError(
            f"w: has {cw} input channels (shape {tuple(w_shape)}) but x has {c} "
            f"(shape {tuple(x_shape)})"
        )
    stride = ck.pair("stride", stride)
    dilation = ck.pair("dilation", dilation)
    pads = ck.conv_padding(padding, (h, w), (r, s), stride, dilation)
    p, q = ck.conv_output_hw((h, w), (r, s), stride, pads, dilation, "w")
    args = (stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1])
    return (n, k, p, q), args


def conv2d_output_shape(x_shape, w_shape, stride=1, padding=0, dilation=1):
    """Output shape (N, K, P, Q) of :func:`conv2d_forward` for these shapes and options."""
    x_shape = ck.shape4("x_shape", x_shape)
    w_shape = ck.shape4("w_shape", w_shape)
    return _conv_geometry(x_shape, w_shape, stride, padding, dilation)[0]


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, *, backend=None):
    """y[n,k] = b[k] + sum_c x[n,c] (*) w[k,c] (cross-correlation).

    x (N, C, H, W), w (K, C, R, S), b (K,) or None -> y (N, K, P, Q).
    """
    x, w, b, y, args = _forward_operands(x, w, b, stride, padding, dilation)
    if y.size:  # an empty batch (N = 0) has nothing to compute, as in PyTorch
        launch("conv2d_forward", backend, x, w, b, y, *args)
    return y


def _forward_operands(x, w, b, stride, padding, dilation):
    """The checked operands of a forward convolution, its output (uninitialised) and the
    kernel's geometry arguments."""
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, C, H, W)")
    w = ck.float_array("w", w, x.dtype)
    ck.ndim("w", w, 4, "(K, C, R, S)")
    if b is not None:
        b = ck.float_array("b", b, x.dtype)
        if b.shape != (w.shape[0],):
            raise ValueError(f"b: expected shape ({w.shape[0]},) for {w.shape[0]} filters, "
                             f"got {tuple(b.shape)}")
    y_shape, args = _conv_geometry(x.shape, w.shape, stride, padding, dilation)
    return x, w, b, ck.xp_of(x).empty(y_shape, dtype=x.dtype), args



def conv2d_backward_data(dy, w, x_shape, stride=1, padding=0, dilation=1, *, backend=None):
    """Gradient of the convolution with respect to its input.

    dy (N, K, P, Q), w (K, C, R, S), x_shape (N, C, H, W) -> dx (N, C, H, W).
    """
    w = ck.float_array("w", w)
    ck.ndim("w", w, 4, "(K, C, R, S)")
    x_shape = ck.shape4("x_shape", x_shape, empty_batch=True)
    y_shape, args = _conv_geometry(x_shape, w.shape, stride, padding, dilation)
    dy = ck.output_grad(dy, y_shape, w.dtype)
    dx = ck.xp_of(w).empty(x_shape, dtype=w.dtype)
    if dx.size:  # an empty batch has an empty gradient, as in PyTorch
        launch("conv2d_backward_data", backend, dy, w, dx, *args)
    return dx


def conv2d_backward_weight(dy, x, w_shape, stride=1, padding=0, dilation=1, *, backend=None):
    """Gradient of the convolution with respect to its filters (summed over the batch).

    dy (N, K, P, Q), x (N, C, H, W), w_shape (K, C, R, S) -> dw (K, C, R, S).
    """
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, C, H, W)")
    w_shape = ck.shape4("w_shape", w_shape)
    y_shape, args = _conv_geometry(x.shape, w_shape, stride, padding, dilation)
    dy = ck.output_grad(dy, y_shape, x.dtype)
    if x.shape[0] == 0:  # a sum over an empty batch, as in PyTorch
        return ck.xp_of(x).zeros(w_shape, dtype=x.dtype)
    dw = ck.xp_of(x).empty(w_shape, dtype=x.dtype)
    launch("conv2d_backward_weight", backend, dy, x, dw, *args)
    return dw


def conv2d_backward_bias(dy, *, backend=None):
    """Gradient with respect to the bias: dy (N, K, P, Q) summed to (K,)."""
    dy = ck.float_array("dy", dy)
    ck.ndim("dy", dy, 4, "(N, K, P, Q)")
    db = ck.xp_of(dy).empty((dy.shape[1],), dtype=dy.dtype)
    launch("conv2d_backward_bias", backend, dy, db)
    return db



# --------------------------------------------------------------------------- transposed conv
#
# A transposed convolution is the convolution's data gradient used as a forward pass, so
# it runs on the same three kernels with the roles swapped (which is also how the CUDA
# backend gets it, when its module has the conv2d kernels): for x (N, Cin, H, W) and
# w (Cin, Cout, R, S), viewing w as the filters of a convolution Cout -> Cin,
#   forward        y  = conv2d_backward_data(dy=x, w)            (N, Cout, Ho, Wo)
#   data gradient  dx = conv2d_forward(x=dy, w)                  (N, Cin, H, W)
#   weight grad.   dw = conv2d_backward_weight(dy=x, x=dy)       (Cin, Cout, R, S)
# The kernels read the convolution's output size (here H, W) from the arrays, so
# output_padding needs no special case: it only makes the "input" Ho x Wo larger.


def _convt_geometry(x_shape, w_shape, stride, padding, output_padding, dilation):
    n, c, h, w = x_shape
    cw, k, r, s = w_shape
    if cw != c:
        raise ValueError(
            f"w: has {cw} input channels (shape {tuple(w_shape)}, laid out (Cin, Cout, R, S)) "
            f"but x has {c} (shape {tuple(x_shape)})"
        )
    if isinstance(padding, str):
        raise ValueError(f"padding: a transposed convolution takes an int or a pair, "
                         f"got {padding!r}")
    sh, sw = ck.pair("stride", stride)
    dh, dw = ck.pair("dilation", dilation)
    ph, pw = ck.pair("padding", padding, positive=False)
    oph, opw = ck.pair("output_padding", output_padding, positive=False)
    for o, st, d in ((oph, sh, dh), (opw, sw, dw)):
        if o >= st and o >= d:
            raise ValueError(
                f"output_padding: must be smaller than the stride or the dilation, got "
                f"output_padding {(oph, opw)} with stride {(sh, sw)}, dilation {(dh, dw)}"
            )
    ho = (h - 1) * sh - 2 * ph + dh * (r - 1) + oph + 1
    wo = (w - 1) * sw - 2 * pw + dw * (s - 1) + opw + 1
    if ho < 1 or wo < 1:
        raise ValueError(
            f"padding: the output would be {ho}x{wo} for input {h}x{w}, kernel {r}x{s}, "
            f"stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)}"
        )
    return (n, k, ho, wo), (sh, sw, ph, pw, dh, dw)


def conv_transpose2d_output_shape(x_shape, w_shape, stride=1, padding=0, output_padding=0,
                                  dilation=1):
    """(N, Cout, Ho, Wo) with Ho = (H-1)*sh - 2*ph + dh*(R-1) + oph + 1 (PyTorch's rule)."""
    x_shape = ck.shape4("x_shape", x_shape)
    w_shape = ck.shape4("w_shape", w_shape)
    return _convt_geometry(x_shape, w_shape, stride, padding, output_padding, dilation)[0]


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1,
                             *, backend=None):
    """Transposed convolution (PyTorch's ``conv_transpose2d``, groups=1): every input pixel
    scatters ``w[c]`` times its value into the output.

    x (N, Cin, H, W), w (Cin, Cout, R, S), b (Cout,) or None -> y (N, Cout, Ho, Wo).
    """
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, Cin, H, W)")
    w = ck.float_array("w", w, x.dtype)
    ck.ndim("w", w, 4, "(Cin, Cout, R, S)")
    if b is not None:
        b = ck.float_array("b", b, x.dtype)
        if b.shape != (w.shape[1],):
            raise ValueError(f"b: expected shape ({w.shape[1]},) for {w.shape[1]} output "
                             f"channels, got {tuple(b.shape)}")
    y_shape, args = _convt_geometry(x.shape, w.shape, stride, padding, output_padding, dilation)
    y = ck.xp_of(x).empty(y_shape, dtype=x.dtype)
    launch("conv2d_backward_data", backend, x, w, y, *args)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def conv_transpose2d_backward_data(dy, w, x_shape, stride=1, padding=0, output_padding=0,
                                   dilation=1, *, backend=None):
    """Gradient of the transposed convolution with respect to its input: the convolution
    of dy with the same filters.

    dy (N, Cout, Ho, Wo), w (Cin, Cout, R, S), x_shape (N, Cin, H, W) -> dx (N, Cin, H, W).
    """
    w = ck.float_array("w", w)
    ck.ndim("w", w, 4, "(Cin, Cout, R, S)")
    x_shape = ck.shape4("x_shape", x_shape)
    y_shape, args = _convt_geometry(x_shape, w.shape, stride, padding, output_padding, dilation)
    dy = ck.output_grad(dy, y_shape, w.dtype)
    dx = ck.xp_of(w).empty(x_shape, dtype=w.dtype)
    launch("conv2d_forward", backend, dy, w, None, dx, *args)
    return dx


def conv_transpose2d_backward_weight(dy, x, w_shape, stride=1, padding=0, output_padding=0,
                                     dilation=1, *, backend=None):
    """Gradient of the transposed convolution with respect to its filters (summed over
    the batch).

    dy (N, Cout, Ho, Wo), x (N, Cin, H, W), w_shape (Cin, Cout, R, S) -> dw (Cin, Cout, R, S).
    """
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, Cin, H, W)")
    w_shape = ck.shape4("w_shape", w_shape)
    y_shape, args = _convt_geometry(x.shape, w_shape, stride, padding, output_padding, dilation)
    dy = ck.output_grad(dy, y_shape, x.dtype)
    dw = ck.xp_of(x).empty(w_shape, dtype=x.dtype)
    launch("conv2d_backward_weight", backend, x, dy, dw, *args)
    return dw


