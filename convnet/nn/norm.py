"""Layer and group normalisation layers (PyTorch's arguments and parameter names)."""

from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from .module import Module, Parameter

__all__ = ["LayerNorm", "GroupNorm"]



def _affine_parameters(module, shape, affine: bool, bias: bool, dtype) -> None:
    """The per-element scale (ones) and shift (zeros) of a normalisation layer, registered
    as None where ``affine``/``bias`` turn them off, as PyTorch's are."""
    if not affine:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)
        return
    module.weight = Parameter(np.ones(shape, dtype))
    if bias:
        module.bias = Parameter(np.zeros(shape, dtype))
    else:
        module.register_parameter("bias", None)

class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` axes, then scale and shift
    element-wise (weight ones, bias zeros) when ``elementwise_affine``."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self._bias = bool(bias and elementwise_affine)
        _affine_parameters(self, self.normalized_shape, elementwise_affine, bias, dtype)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self._bias}")


class GroupNorm(Module):
    """Normalise each group of ``num_channels / num_groups`` channels of every sample,
    then scale and shift per channel when ``affine``."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, bias: bool = True, dtype=np.float32):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.affine = eps, affine
        self._bias = bool(bias and affine)
        _affine_parameters(self, num_channels, affine, bias, dtype)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self._bias}")
