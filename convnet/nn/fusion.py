"""Layer fusion: what ``nn.Sequential`` runs as one kernel, and PyTorch's utilities that
fold a batch norm into the layer before it (``torch.nn.utils.fusion``).

In a Sequential, a Conv2d or Linear followed by ReLU, LeakyReLU (slope >= 0), ELU
(alpha > 0), SELU, Tanh or Sigmoid runs as ``F.conv2d_act``/``F.linear_act`` (bias and
activation applied in the product's kernel), and a Conv2d followed by a BatchNorm2d that
uses its running statistics (eval mode) runs as one convolution with the folded filters,
then with the activation after it if there is one. Outputs agree with the layers run one by
one to float rounding and gradients flow to every parameter (the folding is written with
differentiable ops). A pattern is left alone when a layer in it has hooks or its own
``forward``, is a subclass, or the input is not a floating-point tensor with kernels on
its device, so every hook and every override sees what it would see unfused.
"""

from __future__ import annotations

import copy

from .. import functional as F
from .._dtypes import FLOATING
from ..kernels import has_kernels_for
from ..tensor import Tensor
from .layers import ELU, SELU, BatchNorm2d, Conv2d, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from .module import Parameter

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
           "fuse_linear_bn_weights", "sequential_forward"]

# activation module type -> (kind, its parameter) for F.conv2d_act / F.linear_act
_ACTIVATIONS = {
    ReLU: lambda m: ("relu", None),
    LeakyReLU: lambda m: ("leaky_relu", m.negative_slope),
    ELU: lambda m: ("elu", m.alpha),
    SELU: lambda m: ("selu", None),
    Tanh: lambda m: ("tanh", None),
    Sigmoid: lambda m: ("sigmoid", None),
}


def _plain(m) -> bool:
    """No hooks and no forward of its own: running m is exactly calling its class's forward."""
    d = m.__dict__
    return not d.get("_forward_pre_hooks") and not d.get("_forward_hooks") and "forward" not in d


def _activation_of(m):
    get = _ACTIVATIONS.get(type(m))
    if get is None or not _plain(m):
        return None
    kind, alpha = get(m)
    return (kind, alpha) if F.fusable_activation(kind, alpha) else None


def _folds(bn, channels) -> bool:
    """bn uses its running statistics (so it is an affine map per channel) on `channels`."""
    return (type(bn) is BatchNorm2d and _plain(bn) and not bn.training
            and bn.track_running_stats and bn.running_mean is not None
            and bn.running_var is not None and bn.num_features == channels)


def _fused_step(modules, i, x):
    """(output, number of modules consumed) for a fusable pattern at i, else (None, 0)."""
    m = modules[i]
    w = m.weight
    if not (isinstance(x, Tensor) and x.dtype == w.dtype and x.dtype in FLOATING
            and has_kernels_for(x._data)):
        return None, 0
    j = i + 1
    bn = None
    if type(m) is Conv2d and j < len(modules) and _folds(modules[j], w.shape[0]):
        bn = modules[j]
        j += 1
    act = _activation_of(modules[j]) if j < len(modules) else None
    if act is not None:
        j += 1
    if bn is None and act is None:
        return None, 0
    b = m.bias
    if bn is not None:
        w, b = _folded(w, b, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    if type(m) is Linear:
        return F.linear_act(x, w, b, *act), j - i
    if act is None:
        return F.conv2d(x, w, b, m.stride, m.padding, m.dilation), j - i
    return F.conv2d_act(x, w, b, m.stride, m.padding, m.dilation, *act), j - i


def sequential_forward(modules, x):
    """``nn.Sequential.forward`` over the list `modules`, with the fusable patterns fused."""
    i, n = 0, len(modules)
    while i < n:
        m = modules[i]
        if (type(m) is Conv2d or type(m) is Linear) and i + 1 < n and _plain(m):
            out, used = _fused_step(modules, i, x)
            if used:
                x = out
                i += used
                continue
        x = m(x)
        i += 1
    return x


# --------------------------------------------------------------------------- PyTorch's utilities


def _folded(w, b, rm, rv, eps, bn_w, bn_b, transpose=False):
    """The filters and bias of a layer followed by a batch norm in eval mode (tensors, with
    their gradients): w * s per output channel, (b - rm) * s + bn_b, s = bn_w / sqrt(rv + eps)."""
    scale = (rv + eps).sqrt()
    scale = (1 / scale) if bn_w is None else bn_w / scale
    shape = [1, -1] if transpose else [-1, 1]
    shape += [1] * (w.ndim - 2)
    fused_w = w * scale.reshape(shape)
    shift = -rm if b is None else b - rm
    fused_b = shift * scale if bn_b is None else shift * scale + bn_b
    return fused_w, fused_b


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b, transpose=False):
    """(weight, bias) Parameters of the convolution that computes conv then batch norm with
    these running statistics (PyTorch's ``fuse_conv_bn_weights``)."""
    w, b = _folded(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b, transpose)
    # as PyTorch: a missing bias counts as zeros that need no gradient
    return (Parameter(w.detach(), requires_grad=conv_w.requires_grad),
            Parameter(b.detach(), requires_grad=conv_b is not None and conv_b.requires_grad))


def fuse_conv_bn_eval(conv, bn, transpose=False):
    """A copy of `conv` whose weight and bias include `bn` (both in eval mode), as PyTorch's
    ``torch.nn.utils.fuse_conv_bn_eval``."""
    if conv.training or bn.training:
        raise AssertionError("Fusion only for eval! (fuse_conv_bn_eval: call .eval() first)")
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias,
        transpose)
    return fused


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """(weight, bias) Parameters of the linear layer that computes linear then batch norm
    with these running statistics (PyTorch's ``fuse_linear_bn_weights``)."""
    return fuse_conv_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)


def fuse_linear_bn_eval(linear, bn):
    """A copy of `linear` whose weight and bias include `bn` (both in eval mode), as
    PyTorch's ``torch.nn.utils.fuse_linear_bn_eval``."""
    if linear.training or bn.training:
        raise AssertionError("Fusion only for eval! (fuse_linear_bn_eval: call .eval() first)")
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise ValueError(f"fuse_linear_bn_eval: the linear layer has {linear.out_features} "
                         f"outputs but the batch norm {bn.num_features} features")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused
