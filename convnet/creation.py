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


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None:  # PyTorch infers it from the fill value
        dtype = (np.bool_ if isinstance(fill_value, bool) else
                 np.int64 if isinstance(fill_value, int) else np.float32)
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


def empty(*size, dtype=np.float32, device=None, requires_grad=False) -> Tensor:
    """Zeros: NumPy's uninitialised memory would make runs irreproducible."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def eye(n, m=None, dtype=np.float32, device=None, requires_grad=False) -> Tensor:
    return _make(np.eye(n, m, dtype=dtype), dtype, device, requires_grad)


def linspace(start, end, steps, dtype=np.float32, device=None, requires_grad=False) -> Tensor:
    return _make(np.linspace(start, end, steps, dtype=np.float64), dtype, device,
                 requires_grad)


def randint(low, high=None, size=None, dtype=np.int64, device=None) -> Tensor:
    """``randint(high, size)`` or ``randint(low, high, size)``, high excluded."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint: size (a tuple) is required")
        low, high, size = 0, low, high
    values = _random.generator().integers(low, high, size=_shape((size,)))
    return _make(values, dtype, device, False)


def randperm(n, dtype=np.int64, device=None) -> Tensor:
    return _make(_random.generator().permutation(n), dtype, device, False)


def _like(t: Tensor, dtype, device):
    return (t.shape, t.dtype if dtype is None else dtype, t.device if device is None else device)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _like(t, dtype, device)
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _like(t, dtype, device)
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


empty_like = zeros_like


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _like(t, dtype, device)
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _like(t, dtype, device)
    return randn(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _like(t, dtype, device)
    return rand(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor on the same memory as ``array`` (no copy), like ``torch.from_numpy``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array, False)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Shares memory with ``data`` when dtype and device allow, else copies."""
    if isinstance(data, Tensor):
        return data.to(data.device if device is None else device,
                       data.dtype if dtype is None else dtype)
    return Tensor._wrap(_to_array(data, dtype, device), False)


def from_dlpack(ext) -> Tensor:
    """A tensor on the memory of any DLPack producer (NumPy, CuPy, PyTorch), no copy."""
    if isinstance(ext, Tensor):
        return ext
    if type(ext).__module__.startswith("torch"):
        ext = ext.detach()
    kind = ext.__dlpack_device__()[0] if hasattr(ext, "__dlpack_device__") else 1
    if kind == 1:  # kDLCPU
        return Tensor._wrap(np.from_dlpack(ext), False)
    from .tensor import _cupy

    return Tensor._wrap(_cupy().from_dlpack(ext), False)
