"""Neural-network ops: convolution, pooling, batch norm, linear, activations, dropout.
Heavy ops call ``convnet.kernels`` (which picks the backend for the array's device);
element-wise ones are written once for NumPy and CuPy.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import kernels as K
from ..autograd import Function
from ..random import rand_like
from ..tensor import Tensor
from ._ops import acc_sum, as_f32, xp_of

__all__ = [
    "alpha_dropout", "avg_pool2d", "batch_norm", "conv2d", "dropout", "elu", "gelu",
    "leaky_relu", "linear", "log_softmax", "max_pool2d", "relu", "selu", "sigmoid", "softmax",
    "tanh",
]

SELU_ALPHA = K.SELU_ALPHA
SELU_SCALE = K.SELU_SCALE


# --------------------------------------------------------------------------- conv / pool


class Conv2d(Function):
    def forward(self, x, w, *maybe_b, stride=1, padding=0, dilation=1):
        b = maybe_b[0] if maybe_b else None
        self.save_for_backward(x, w, b is not None, stride, padding, dilation)
        return K.conv2d_forward(x, w, b, stride, padding, dilation)

    def backward(self, g):
        return conv2d_grads(self.needs_grad, g, *self.saved)


def conv2d_grads(needs_grad, g, x, w, has_b, stride, padding, dilation):
    """The gradients of a convolution's inputs (x, w[, b]) that need one, from dy = g."""
    dx = dw = db = None
    if needs_grad[0]:
        dx = K.conv2d_backward_data(g, w, x.shape, stride, padding, dilation)
    if needs_grad[1]:
        dw = K.conv2d_backward_weight(g, x, w.shape, stride, padding, dilation)
    if has_b and needs_grad[2]:
        db = K.conv2d_backward_bias(g)
    return (dx, dw, db) if has_b else (dx, dw)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """2-D cross-correlation. input (N, C, H, W), weight (K, C, R, S), bias (K,).

    padding: int, (ph, pw), ((top, bottom), (left, right)), "same" or "valid".
    """
    args = (input, weight) if bias is None else (input, weight, bias)
    return Conv2d.apply(*args, stride=stride, padding=padding, dilation=dilation)


class MaxPool2d(Function):
    # Keeps its input (as PyTorch's does; in conv-ReLU-pool the ReLU holds that array
    # already) rather than the int64 argmax indices, which backward finds again: the
    # indices would be 8 bytes an output, as much as a 2x2 window of bfloat16 inputs.
    def forward(self, x, kernel_size, stride, padding):
        y, _ = K.max_pool2d_forward(x, kernel_size, stride, padding)
        self.save_for_backward(x, kernel_size, stride, padding)
        return y

    def backward(self, g):
        x, kernel_size, stride, padding = self.saved
        _, idx = K.max_pool2d_forward(x, kernel_size, stride, padding)
        return K.max_pool2d_backward(g, idx, x.shape)


def max_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max pooling; ``ceil_mode=True`` keeps the partial windows at the bottom/right edge
    (PyTorch's output size rule)."""
    if ceil_mode:
        from ._pool_norm import max_pool2d_ceil

        return max_pool2d_ceil(input, kernel_size, stride, padding)
    return MaxPool2d.apply(input, kernel_size=kernel_size, stride=stride, padding=padding)


class AvgPool2d(Function):
    def forward(self, x, kernel_size, stride, padding, count_include_pad):
        self.save_for_backward(x.shape, kernel_size, stride, padding, count_include_pad)
        return K.avg_pool2d_forward(x, kernel_size, stride, padding, count_include_pad)

    def backward(self, g):
        shape, k, s, p, cip = self.saved
        return K.avg_pool2d_backward(g, shape, k, s, p, cip)


def avg_pool2d(input, kernel_size, stride=None, padding=0, count_include_pad=True):
    return AvgPool2d.apply(input, kernel_size=kernel_size, stride=stride, padding=padding,
                           count_include_pad=count_include_pad)


# --------------------------------------------------------------------------- batch norm


class BatchNormTrain(Function):
    def forward(self, x, w, b, running_mean=None, running_var=None, momentum=0.1, eps=1e-5):
        y, mean, invstd = K.batch_norm_forward_training(x, w, b, running_mean, running_var,
                                                        momentum, eps)
        self.save_for_backward(x, w, mean, invstd)
        return y

    def backward(self, g):
        x, w, mean, invstd = self.saved
        dx, dw, db = K.batch_norm_backward(g, x, mean, invstd, w)
        return dx, dw, db


class BatchNormEval(Function):
    """y = x * scale + shift with the running statistics frozen."""

    def forward(self, x, w, b, running_mean, running_var, eps=1e-5):
        xp = xp_of(x)
        invstd = 1.0 / xp.sqrt(running_var.astype(np.float64) + eps)
        self.save_for_backward(x, w, running_mean, invstd.astype(x.dtype))
        return K.batch_norm_forward_inference(x, running_mean, running_var, w, b, eps)

    def backward(self, g):
        x, w, mean, invstd = self.saved
        shape = (1, -1) + (1,) * (x.ndim - 2)
        axes = (0,) + tuple(range(2, x.ndim))
        xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
        dx = g * (w * invstd).reshape(shape) if self.needs_grad[0] else None
        return dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation over the channel axis (1) of (N, C) or (N, C, H, W) input.

    In training the batch statistics normalise and ``running_mean``/``running_var``
    (arrays or tensors, updated in place when given) follow them with ``momentum``.
    """
    xp = input._xp
    c = input.shape[1] if input.ndim >= 2 else 0
    if input.ndim not in (2, 4):
        raise ValueError(f"input: expected (N, C) or (N, C, H, W), got shape {input.shape}")
    if weight is None:
        weight = Tensor._wrap(xp.ones(c, dtype=input.dtype), False)
    if bias is None:
        bias = Tensor._wrap(xp.zeros(c, dtype=input.dtype), False)
    rm = running_mean._data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var._data if isinstance(running_var, Tensor) else running_var
    per_channel = input._data.size // c if c else 0
    if training and per_channel == 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {input.shape}")
    if per_channel == 0:
        # an empty batch, as in PyTorch: an empty output, the running statistics untouched,
        # zero gradients for weight and bias (the affine map over no elements)
        shape = (1, c) + (1,) * (input.ndim - 2)
        return input * weight.reshape(shape) + bias.reshape(shape)
    if training:
        return BatchNormTrain.apply(input, weight, bias, running_mean=rm, running_var=rv,
                                    momentum=momentum, eps=eps)
    if rm is None or rv is None:
        raise ValueError("batch_norm: running_mean and running_var are required when "
                         "training=False")
    return BatchNormEval.apply(input, weight, bias, running_mean=rm, running_var=rv, eps=eps)


# --------------------------------------------------------------------------- linear


class Linear(Function):
    """y = x @ W^T + b over the last axis of x (the products: ``convnet.kernels.matmul``)."""

    def forward(self, x, w, *maybe_b):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        self.save_for_backward(x2, w, lead, bool(maybe_b))
        y = K.matmul(x2, w, trans_b=True)
        if maybe_b:
            y += maybe_b[0]
        return y.reshape(*lead, w.shape[0])

    def backward(self, g):
        return linear_grads(self.needs_grad, g, *self.saved)


def linear_grads(needs_grad, g, x2, w, lead, has_b):
    """The gradients of a linear layer's inputs (x, w[, b]) that need one, from dy = g;
    x2 is x as a matrix, lead its leading shape."""
    g2 = g.reshape(-1, w.shape[0])
    dx = dw = db = None
    if needs_grad[0]:
        dx = K.matmul(g2, w).reshape(*lead, w.shape[1])
    if needs_grad[1]:
        dw = K.matmul(g2, x2, trans_a=True)
    if has_b and needs_grad[2]:
        db = acc_sum(g2, axis=0)
    return (dx, dw, db) if has_b else (dx, dw)


def linear(input, weight, bias=None):
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {input.shape[-1]} features but weight has shape "
                         f"{weight.shape} (out, in={weight.shape[1]})")
    args = (input, weight) if bias is None else (input, weight, bias)
    return Linear.apply(*args)


# --------------------------------------------------------------------------- activations


class Activation(Function):
    """Every element-wise activation of ``convnet.kernels.ACTIVATIONS``: the table says which
    kernel runs it and whether backward needs the input or the output."""

    def forward(self, x, kind, alpha=None):
        y = K.activation_forward(x, kind, alpha)
        self.save_for_backward(y if K.ACTIVATIONS[kind].saved == "y" else x, kind, alpha)
        return y

    def backward(self, g):
        saved, kind, alpha = self.saved
        return K.activation_backward(g, saved, kind, alpha)


def _activate(input, kind, alpha=None, inplace=False):
    if inplace:
        from . import _inplace

        return _inplace.apply(input, Activation, kind=kind, alpha=alpha)
    return Activation.apply(input, kind=kind, alpha=alpha)


def relu(input, inplace=False):
    return _activate(input, "relu", None, inplace)


def relu_(input):
    return _activate(input, "relu", None, True)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _activate(input, "leaky_relu", negative_slope, inplace)


def leaky_relu_(input, negative_slope=0.01):
    return _activate(input, "leaky_relu", negative_slope, True)


def elu(input, alpha=1.0, inplace=False):
    return _activate(input, "elu", alpha, inplace)


def elu_(input, alpha=1.0):
    return _activate(input, "elu", alpha, True)


def selu(input, inplace=False):
    return _activate(input, "selu", None, inplace)


def sigmoid(input):
    return Activation.apply(input, kind="sigmoid")


def tanh(input):
    return Activation.apply(input, kind="tanh")


def gelu(input, approximate="none"):
    """x * Phi(x), Phi the standard normal CDF; ``approximate="tanh"``: PyTorch's tanh form."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")
    return Activation.apply(input, kind="gelu", alpha=int(approximate == "tanh"))


class LogSoftmax(Function):
    # 16-bit inputs are computed in float32 and rounded once, as PyTorch's kernels do
    def forward(self, x, dim=-1):
        xp = xp_of(x)
        x32 = as_f32(x)
        shifted = x32 - x32.max(axis=dim, keepdims=True)
        y = (shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))).astype(
            x.dtype, copy=False)
        self.save_for_backward(y, dim)
        return y

    def backward(self, g):
        y, dim = self.saved
        g32 = as_f32(g)
        return (g32 - xp_of(y).exp(as_f32(y)) * g32.sum(axis=dim, keepdims=True)).astype(
            g.dtype, copy=False)


class Softmax(Function):
    def forward(self, x, dim=-1):
        xp = xp_of(x)
        x32 = as_f32(x)
        e = xp.exp(x32 - x32.max(axis=dim, keepdims=True))
        y = (e / e.sum(axis=dim, keepdims=True)).astype(x.dtype, copy=False)
        self.save_for_backward(y, dim)
        return y

    def backward(self, g):
        y, dim = self.saved
        y32, g32 = as_f32(y), as_f32(g)
        return (y32 * (g32 - (g32 * y32).sum(axis=dim, keepdims=True))).astype(
            g.dtype, copy=False)


def softmax(input, dim):
    return Softmax.apply(input, dim=dim)


def log_softmax(input, dim):
    return LogSoftmax.apply(input, dim=dim)


# Losses live in _loss.py.


# --------------------------------------------------------------------------- dropout


class _Mask(Function):
    """y = x * mask + shift, mask and shift fixed (drawn by the caller)."""

    def forward(self, x, mask=None, shift=None):
        self.save_for_backward(mask)
        y = x * mask
        return y if shift is None else y + shift

    def backward(self, g):
        (mask,) = self.saved
        return g * mask


def _check_p(p):
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p: dropout probability must be in [0, 1], got {p!r}")


def _masked(input, mask, shift, inplace):
    if inplace:
        from . import _inplace

        return _inplace.apply(input, _Mask, mask=mask, shift=shift)
    return _Mask.apply(input, mask=mask, shift=shift)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training)."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    keep = rand_like(input._data) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = keep.astype(input.dtype) * input.dtype.type(scale)
    return _masked(input, mask, None, inplace)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout for SELU networks: dropped units take SELU's negative saturation value and an
    affine correction keeps the mean and variance of the activations (Klambauer 2017)."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    alpha_p = -SELU_ALPHA * SELU_SCALE
    keep = rand_like(input._data) >= p
    a = 1.0 / math.sqrt((1 - p) * (1 + p * alpha_p**2))
    b = -a * alpha_p * p
    dt = input.dtype.type
    mask = keep.astype(input.dtype) * dt(a)
    shift = (~keep).astype(input.dtype) * dt(a * alpha_p) + dt(b)
    return _masked(input, mask, shift, inplace)
