"""Tensor constructors with PyTorch's names (float32 by default)."""

from __future__ import annotations

import numpy as np

from . import random as _random
from .tensor import Tensor, _to_array


def _make(array, dtype, device, requires_grad) -> Tensor:
    t = Tensor._wrap(_to_array(array, dtype, device), False)
    return t.requires_grad_(True) if requires_grad else t


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def zeros(*size, dtype=np.float32, device=None, requires_grad=False) -> Tensor:
    return _make(np.zeros(_shape(size), dtype), dtype, device, requires_grad)


def ones(*size, dtype=np.float32, device=None, requires_grad=False) -> Tensor:
    return _make(np.ones(_shape(size), dtype), dtype, device, requires_grad)


def full(size, fill_value, dtype=np.float32, device=None, requires_grad=False) -> Tensor:
    return _make(np.full(_shape((size,)), fill_value, dtype), dtype, device, requires_grad)


def randn(*size, dtype=np.float32, device=None, requires_grad=False) -> Tensor:
    return _make(_random.randn(_shape(size), dtype), dtype, device, requires_grad)


def rand(*size, dtype=np.float32, device=None, requires_grad=False) -> Tensor:
    return _make(_random.uniform(0.0, 1.0, _shape(size), dtype), dtype, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None) -> Tensor:
    if end is None:
        start, end = 0, start
    arr = np.arange(start, end, step)
    if dtype is None and arr.dtype == np.float64:
        dtype = np.float32
    return _make(arr, dtype, device, False)


def zeros_like(t: Tensor, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=t.dtype, device=t.device, requires_grad=requires_grad)
