"""Arrays for tensors: NumPy on the CPU, CuPy on CUDA, PyTorch tensors read without a copy."""

from __future__ import annotations

import numpy as np

from . import _dtypes
from .kernels._checks import is_cupy as _is_cupy


def _cupy():
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(
            "device 'cuda': CuPy is not installed (pip install convnet[cuda])"
        ) from exc
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("device 'cuda': no CUDA device found")
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise RuntimeError(f"device 'cuda': no usable CUDA driver ({exc})") from exc
    return cupy


def _normalize_device(device) -> str:
    if device is None:
        return "cpu"
    return _dtypes.device(device).type


def _from_foreign(data):
    """A NumPy/CuPy array on the same memory as a PyTorch tensor (no copy)."""
    data = data.detach()
    if data.device.type == "cpu":
        return np.from_dlpack(data)
    return _cupy().from_dlpack(data)


def _to_array(data, dtype=None, device=None):
    """An array for ``data`` on ``device``; Python floats default to float32 as in PyTorch."""
    device = _normalize_device(device)
    if hasattr(data, "_vc"):  # a convnet Tensor
        data = data._data
    elif type(data).__module__.startswith("torch"):
        data = _from_foreign(data)
    if dtype is not None:
        dtype = _dtypes.as_dtype(dtype)
    if device == "cuda":
        cp = _cupy()
        if dtype is None and not hasattr(data, "dtype"):
            arr = np.asarray(data)
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            return cp.asarray(arr)
        return cp.asarray(data, dtype=dtype)
    if _is_cupy(data):
        data = data.get()
    if dtype is None and not hasattr(data, "dtype"):
        arr = np.asarray(data)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return arr
    return np.asarray(data, dtype=dtype)
