"""Fused epilogues: a convolution or linear product whose bias and activation are applied
before the output is stored (in registers on the native backend, as one extra pass on the
others), so that ``act(conv(x, w) + b)`` costs one write of the output instead of three."""

from __future__ import annotations

from . import _checks as ck
from . import spec
from ._boundary import launch
from .activation import ACTIVATIONS
from .conv import _forward_operands

__all__ = ["conv2d_act_forward", "epilogue_args", "linear_act_forward"]


def epilogue_args(activation=None, alpha=None):
    """(act, p1, p2) of the fused kernels for an activation kind of ``ACTIVATIONS`` (relu,
    leaky_relu, elu, selu, tanh, sigmoid, gelu; ``alpha`` its parameter as in
    ``activation_forward``) or None (no activation)."""
    if activation is None:
        return 0, 0.0, 0.0
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected None or one of {tuple(ACTIVATIONS)}, got "
                         f"{activation!r}")
    act = ACTIVATIONS[activation]
    params = tuple(float(v) for v in act.params(alpha)) + (0.0, 0.0)
    return spec.EPILOGUE_ACTS.index(act.kernel), params[0], params[1]


def conv2d_act_forward(x, w, b=None, stride=1, padding=0, dilation=1, activation=None,
                       alpha=None, *, backend=None):
    """y = activation(conv2d_forward(x, w, b, stride, padding, dilation)) in one kernel.

    x (N, C, H, W), w (K, C, R, S), b (K,) or None -> y (N, K, P, Q).
    """
    codes = epilogue_args(activation, alpha)
    x, w, b, y, args = _forward_operands(x, w, b, stride, padding, dilation)
    if y.size:
        launch("conv2d_forward_act", backend, x, w, b, y, *args, *codes)
    return y


def linear_act_forward(x, w, b=None, activation=None, alpha=None, *, backend=None):
    """y = activation(x @ w.T + b) in one kernel. x (M, K), w (N, K), b (N,) or None ->
    y (M, N)."""
    codes = epilogue_args(activation, alpha)
    x = ck.float_array("x", x)
    ck.ndim("x", x, 2, "(M, K)")
    w = ck.float_array("w", w, x.dtype)
    ck.ndim("w", w, 2, "(N, K)")
    if b is not None:
        b = ck.float_array("b", b, x.dtype)
    y = ck.xp_of(x).empty((x.shape[0], w.shape[0]), dtype=x.dtype)
    launch("linear_forward_act", backend, x, w, b, y, *codes)
    return y
