"""Element-wise activations: one table says, per kind, which kernel runs it, with which
parameters, and which tensor its gradient needs; array code stands in where a device has
no kernel (CuPy arrays without the cuda backend)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import _checks as ck
from . import spec
from ._boundary import launch
from ._registry import get

__all__ = ["ACTIVATIONS", "Activation", "SELU_ALPHA", "SELU_SCALE", "activation_forward",
           "activation_backward", "has_kernels_for"]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _number(default):
    def params(alpha):
        if alpha is None:
            return (default,)
        try:
            return (float(alpha),)
        except (TypeError, ValueError):
            raise TypeError(f"alpha: expected a number, got {alpha!r}") from None
    return params


@dataclass(frozen=True)
class Activation:
    """kernel: the manifest's ``{kernel}_forward/_backward`` pair; params: the user's
    parameter (or None) -> the kernel's scalars; saved: the tensor backward needs, the
    input "x" or the output "y"."""

    kernel: str
    params: Callable
    saved: str


def _passed(kernel, params):
    """A kind that is its own kernel: ``alpha`` is its one parameter (None: 0)."""
    if not params:
        return lambda _: ()
    return lambda a: (0 if a is None else a,)


# Every activation kernel of the manifest is a kind of its own name; these kinds add
# defaults and parameter meanings (PyTorch's) on top.
ACTIVATIONS: dict[str, Activation] = {
    kernel: Activation(kernel, _passed(kernel, params), saved)
    for kernel, (params, saved) in spec.ACTIVATION_KERNELS.items()
}
ACTIVATIONS.update({
    # relu keeps its output, as PyTorch: y > 0 where x > 0, and the next layer (a conv, a
    # max pool) keeps that same array, so the input can be freed
    "relu": Activation("leaky_relu", lambda _: (0.0,), "y"),
    "leaky_relu": Activation("leaky_relu", _number(0.01), "x"),
    "elu": Activation("elu", lambda a: (*_number(1.0)(a), 1.0), "x"),
    "selu": Activation("elu", lambda _: (SELU_ALPHA, SELU_SCALE), "x"),
})


def _activation(kind):
    if kind not in ACTIVATIONS:
        raise ValueError(f"kind: expected one of {tuple(ACTIVATIONS)}, got {kind!r}")
    return ACTIVATIONS[kind]


def has_kernels_for(a) -> bool:
    """True when a backend can run this array's kernels: always for NumPy arrays, for
    CuPy arrays when the cuda backend is available."""
    return not ck.is_cupy(a) or get("cuda") is not None


def activation_forward(x, kind, alpha=None, *, backend=None):
    """y = act(x), element-wise, any shape. kind: relu, leaky_relu (alpha = negative slope,
    default 0.01), elu (alpha, default 1), selu, tanh, sigmoid, and every other activation
    kernel of the manifest under its name, alpha its parameter (gelu: 0 erf, 1 tanh)."""
    act = _activation(kind)
    params = act.params(alpha)
    x = ck.float_array("x", x)
    if backend is None and not has_kernels_for(x):
        return _array_code(_ARRAY_FORWARD, act.kernel, "forward", x, *params)
    y = ck.xp_of(x).empty_like(x)
    launch(f"{act.kernel}_forward", backend, x, y, *params)
    return y


def activation_backward(dy, saved, kind, alpha=None, *, backend=None):
    """dx for :func:`activation_forward`. ``saved`` is ``ACTIVATIONS[kind].saved``: the
    output y for tanh and sigmoid, the input x for the others."""
    act = _activation(kind)
    params = act.params(alpha)
    dy = ck.float_array("dy", dy)
    saved = ck.float_array("saved", saved, dy.dtype)
    if saved.shape != dy.shape:
        raise ValueError(f"saved: shape {tuple(saved.shape)} differs from dy's {tuple(dy.shape)}")
    if backend is None and not has_kernels_for(dy):
        return _array_code(_ARRAY_BACKWARD, act.kernel, "backward", dy, saved, *params)
    dx = ck.xp_of(dy).empty_like(dy)
    launch(f"{act.kernel}_backward", backend, dy, saved, dx, *params)
    return dx


# --------------------------------------------------------------------------- array code
# Same formulas as the kernels (NaN and infinities included), for NumPy or CuPy arrays.


def _array_code(table, kernel, way, *args):
    """Array code for a device without kernels; a kind with none runs on the host's CPU
    kernel (a copy each way) rather than not at all."""
    n = sum(hasattr(a, "shape") for a in args)
    xp = ck.xp_of(args[0])
    if kernel in table:
        return table[kernel](xp, *args)
    host = [xp.asnumpy(a) for a in args[:n]]
    out = np.empty_like(host[0])
    launch(f"{kernel}_{way}", None, *host, out, *args[n:])
    return xp.asarray(out)


def _leaky(xp, x, slope):
    neg = xp.zeros_like(x) if slope == 0 else x * x.dtype.type(slope)
    return xp.where(x > 0, x, xp.where(x != x, x, neg))


def _leaky_grad(xp, g, x, slope):
    return xp.where(x > 0, g, g * g.dtype.type(slope))


def _elu(xp, x, alpha, scale):
    neg = x.dtype.type(alpha) * xp.expm1(xp.minimum(x, 0))
    return x.dtype.type(scale) * xp.where(x > 0, x, neg)


def _elu_grad(xp, g, x, alpha, scale):
    d = xp.where(x <= 0, alpha * xp.exp(xp.minimum(x, 0)), 1)
    return g * g.dtype.type(scale) * d.astype(g.dtype, copy=False)


def _sigmoid(xp, x):
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


_ARRAY_FORWARD = {"leaky_relu": _leaky, "elu": _elu, "tanh": lambda xp, x: xp.tanh(x),
                  "sigmoid": _sigmoid}
_ARRAY_BACKWARD = {"leaky_relu": _leaky_grad, "elu": _elu_grad,
                   "tanh": lambda xp, g, y: g * (1 - y * y),
                   "sigmoid": lambda xp, g, y: g * y * (1 - y)}
