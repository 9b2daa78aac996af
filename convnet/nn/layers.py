"""Layers with PyTorch's constructor arguments, parameter names and default initialisation."""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..tensor import Tensor
from . import init
from .module import Module, Parameter

__all__ = [
    "Identity",
    "Linear",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "AlphaDropout",
    "Flatten",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "SELU",
    "GELU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
]

def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _check_ints(layer: str, name: str, value, low: int, pair: bool = True):
    """``value`` (an int, or a pair of them) must be >= ``low``: a ValueError naming the
    layer's argument otherwise, at the constructor rather than at the first call."""
    values = _pair(value) if pair else (value,)
    ok = len(values) == 2 if pair else True
    ok = ok and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low
                    for v in values)
    if not ok:
        what = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{layer}: {name} must be {what}{' or a pair of them' if pair else ''}"
                         f", got {value!r}")


class Identity(Module):
    def forward(self, x):
        return x


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        self.bias = Parameter(np.empty(out_features, dtype)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class _ConvNd(Module):
    """Parameters shared by Conv2d and ConvTranspose2d: PyTorch's shapes and initialisation
    (Kaiming-uniform with a = sqrt(5); bias bound 1/sqrt(fan_in), where fan_in is read off
    the weight's dim 1, as PyTorch does for both)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 bias, dtype, transposed):
        super().__init__()
        layer = "ConvTranspose2d" if transposed else "Conv2d"
        _check_ints(layer, "in_channels", in_channels, 1, pair=False)
        _check_ints(layer, "out_channels", out_channels, 1, pair=False)
        _check_ints(layer, "kernel_size", kernel_size, 1)
        _check_ints(layer, "stride", stride, 1)
        _check_ints(layer, "dilation", dilation, 1)
        if not (isinstance(padding, str) and padding in ("same", "valid")):
            _check_ints(layer, "padding", padding, 0)
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = (kh, kw), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation = _pair(dilation)
        shape = (in_channels, out_channels) if transposed else (out_channels, in_channels)
        self.weight = Parameter(np.empty((*shape, kh, kw), dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)


class Conv2d(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, bias=True, dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         bias, dtype, transposed=False)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}"
                + (f", padding={self.padding}" if self.padding != (0, 0) else "")
                + (f", dilation={self.dilation}" if self.dilation != (1, 1) else "")
                + ("" if self.bias is not None else ", bias=False"))


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode = ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, " \
               f"padding={self.padding}, dilation=1, ceil_mode={self.ceil_mode}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.count_include_pad = count_include_pad

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                            self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, " \
               f"padding={self.padding}"


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype))
            self.bias = Parameter(np.zeros(num_features, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))

    def forward(self, x):
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input of "
                             f"{' or '.join(f'{d}-D' for d in self._ndims)} with "
                             f"{self.num_features} channels, got shape {x.shape}")
        use_batch = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            self.num_batches_tracked._data[...] += 1  # in place: stays a 0-d array
        rm = self.running_mean if self.track_running_stats else None
        rv = self.running_var if self.track_running_stats else None
        return F.batch_norm(x, rm, rv, self.weight, self.bias, use_batch, self.momentum,
                            self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, " \
               f"affine={self.affine}, bias={self.affine}, " \
               f"track_running_stats={self.track_running_stats}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) features."""

    _ndims = (2,)


class BatchNorm2d(_BatchNorm):
    """Batch norm over the channels of (N, C, H, W) maps."""

    _ndims = (4,)


class Dropout(Module):
    """Zeroes elements with probability p in training and rescales the rest by 1/(1-p)."""

    _fn = staticmethod(F.dropout)

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = p
        self.inplace = inplace

    def forward(self, x):
        return self._fn(x, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class AlphaDropout(Dropout):
    """Dropout that keeps the mean and variance of SELU activations."""

    _fn = staticmethod(F.alpha_dropout)


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _activation(name, fn, doc, **defaults):
    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        params = dict(defaults)
        params.update(zip(defaults, args))
        params.update(kwargs)
        for k, v in params.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_params", tuple(params))

    def forward(self, x):
        return fn(x, **{k: getattr(self, k) for k in self._params})

    def extra_repr(self):
        # PyTorch shows inplace only when it is set
        return ", ".join(f"{k}={getattr(self, k)}" for k in self._params
                         if k != "inplace" or getattr(self, k))

    return type(name, (Module,), {"__init__": __init__, "forward": forward,
                                  "extra_repr": extra_repr, "__doc__": doc})


ReLU = _activation("ReLU", F.relu, "max(0, x)", inplace=False)
LeakyReLU = _activation("LeakyReLU", F.leaky_relu, "x if x > 0 else negative_slope * x",
                        negative_slope=0.01, inplace=False)
ELU = _activation("ELU", F.elu, "x if x > 0 else alpha*(e^x - 1)", alpha=1.0, inplace=False)
SELU = _activation("SELU", F.selu, "scale * ELU(x, alpha), self-normalising", inplace=False)
Sigmoid = _activation("Sigmoid", lambda x: F.sigmoid(x), "1 / (1 + e^-x)")
GELU = _activation("GELU", lambda x, approximate: F.gelu(x, approximate),
                   "x * Phi(x), Phi the normal CDF (approximate='tanh': PyTorch's tanh form)",
                   approximate="none")
Tanh = _activation("Tanh", lambda x: F.tanh(x), "tanh(x)")
Softmax = _activation("Softmax", lambda x, dim: F.softmax(x, dim), "softmax over dim", dim=-1)
LogSoftmax = _activation("LogSoftmax", lambda x, dim: F.log_softmax(x, dim),
                         "log-softmax over dim", dim=-1)
