"""Fused ops: a convolution or a linear layer with its bias and activation in one kernel
(``convnet.kernels.fused``), one Function each. Their backward takes the activation's
gradient from the saved output, so an activation whose gradient needs its input (GELU)
or whose output does not tell the input's sign (a negative slope or alpha) is not fused.
``nn.Sequential`` uses them for a Conv2d/Linear followed by an activation
(``convnet.nn.fusion``); they can also be called directly."""

from __future__ import annotations

from .. import kernels as K
from ..autograd import Function
from ._nn import SELU_ALPHA, SELU_SCALE, conv2d_grads, linear_grads
from ._ops import xp_of

__all__ = ["conv2d_act", "fusable_activation", "linear_act"]


def fusable_activation(activation, alpha=None) -> bool:
    """Whether ``activation`` (a kind of ``convnet.kernels.ACTIVATIONS``, alpha its
    parameter) can be fused: its gradient follows exactly from its output."""
    if activation in ("relu", "tanh", "sigmoid", "selu"):
        return True
    if activation == "leaky_relu":  # y > 0 exactly when x > 0
        return (0.01 if alpha is None else alpha) >= 0
    if activation == "elu":
        return (1.0 if alpha is None else alpha) > 0
    return False


def _check_activation(activation, alpha):
    if not fusable_activation(activation, alpha):
        raise ValueError("activation: expected relu, tanh, sigmoid, selu, leaky_relu with "
                         f"slope >= 0 or elu with alpha > 0, got {activation!r} "
                         f"(alpha={alpha!r})")


def _activation_grad(g, y, activation, alpha):
    """dL/d(pre-activation) from dL/dy = g and the output y."""
    if activation in ("elu", "selu"):
        # below 0, y = scale*a*(e^x - 1): the derivative scale*a*e^x is y + scale*a
        a, scale = (SELU_ALPHA, SELU_SCALE) if activation == "selu" else (
            1.0 if alpha is None else float(alpha), 1.0)
        xp = xp_of(g)
        return (g * xp.where(y > 0, scale, y + scale * a)).astype(g.dtype, copy=False)
    # tanh and sigmoid read their output; the ReLU family reads the sign, the same in y
    return K.activation_backward(g, y, activation, alpha)


class Conv2dAct(Function):
    def forward(self, x, w, *maybe_b, stride=1, padding=0, dilation=1, activation="relu",
                alpha=None):
        b = maybe_b[0] if maybe_b else None
        y = K.conv2d_act_forward(x, w, b, stride, padding, dilation, activation, alpha)
        self.save_for_backward(x, w, y, b is not None, stride, padding, dilation, activation,
                               alpha)
        return y

    def backward(self, g):
        x, w, y, has_b, stride, padding, dilation, activation, alpha = self.saved
        gz = _activation_grad(g, y, activation, alpha)
        return conv2d_grads(self.needs_grad, gz, x, w, has_b, stride, padding, dilation)


def conv2d_act(input, weight, bias=None, stride=1, padding=0, dilation=1, activation="relu",
               alpha=None):
    """``activation(conv2d(input, weight, bias, ...))`` with the bias and activation applied
    in the convolution's kernel; same values and gradients as the two ops."""
    _check_activation(activation, alpha)
    args = (input, weight) if bias is None else (input, weight, bias)
    return Conv2dAct.apply(*args, stride=stride, padding=padding, dilation=dilation,
                           activation=activation, alpha=alpha)


class LinearAct(Function):
    def forward(self, x, w, *maybe_b, activation="relu", alpha=None):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        y = K.linear_act_forward(x2, w, maybe_b[0] if maybe_b else None, activation, alpha)
        y = y.reshape(*lead, w.shape[0])
        # the array handed out is the one saved, so that an in-place change of the output
        # is caught by the version check before backward reads it
        self.save_for_backward(x2, w, lead, bool(maybe_b), y, activation, alpha)
        return y

    def backward(self, g):
        x2, w, lead, has_b, y, activation, alpha = self.saved
        gz = _activation_grad(g, y, activation, alpha)
        return linear_grads(self.needs_grad, gz, x2, w, lead, has_b)


def linear_act(input, weight, bias=None, activation="relu", alpha=None):
    """``activation(linear(input, weight, bias))`` with the bias and activation applied in
    the product's kernel; same values and gradients as the two ops."""
    _check_activation(activation, alpha)
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {input.shape[-1]} features but weight has shape "
                         f"{weight.shape} (out, in={weight.shape[1]})")
    args = (input, weight) if bias is None else (input, weight, bias)
    return LinearAct.apply(*args, activation=activation, alpha=alpha)
