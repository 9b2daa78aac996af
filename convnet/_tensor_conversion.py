"""Tensor's conversions: to Python numbers, NumPy, DLPack, other dtypes and devices, and
new tensors like this one. A base class of :class:`convnet.tensor.Tensor`, which imports
this module before the ops exist; the ops are looked up when first called."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _dtypes
from ._arrays import _normalize_device

if TYPE_CHECKING:
    from .tensor import Tensor


def _ops():
    from .functional import _ops as ops

    return ops


class Conversions:
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared memory on the CPU, like PyTorch; unlike it,
        allowed on a tensor that requires grad)."""
        if self.device != "cpu":
            raise TypeError("numpy: the tensor is on 'cuda'; call .cpu() first")
        return self._data

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               f"to Scalar (shape {self.shape})")
        return self._data.reshape(()).item()

    def __int__(self) -> int:
        return int(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to "
                            "an index")
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is "
                               "ambiguous")
        return bool(self._data.reshape(()).item())

    def __format__(self, spec: str) -> str:
        if self.ndim == 0:  # f"{loss:.3f}" as for a number
            return format(self.item(), spec)
        return object.__format__(self, spec) if spec else repr(self)

    def tolist(self):
        return self.to("cpu")._data.tolist()

    def __array__(self, dtype=None, copy=None):
        # NumPy 2 passes copy=True for np.array(t): the result must then own its memory
        arr = self._data.get() if self.is_cuda else self._data
        if dtype is not None:
            return arr.astype(dtype, copy=bool(copy))
        return arr.copy() if copy else arr

    def __dlpack__(self, *args, **kwargs):
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False) -> Tensor:
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(other)``: a copy
        when anything changes (or ``copy=True``), else ``self``; differentiable."""
        for a in args:
            if a is None:
                continue
            if hasattr(a, "_vc"):  # a Tensor
                device, dtype = a.device, a.dtype
            elif _dtypes.is_dtype(a):
                dtype = a
            else:
                device = a
        target = self.device.type if device is None else _normalize_device(device)
        dt = self.dtype if dtype is None else _dtypes.as_dtype(dtype)
        if target == self.device and dt == self.dtype and not copy:
            return self
        return _ops().To.apply(self, device=target, dtype=dt)

    def type(self, dtype=None):
        """Without argument the type name ('torch.FloatTensor'), else ``to(dtype)``."""
        if dtype is None:
            return _dtypes.type_name(self.dtype)
        if isinstance(dtype, str):
            dtype = _dtypes.TYPE_NAMES[dtype]
        return self.to(dtype=dtype)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(dtype=other.dtype)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device=None) -> Tensor:
        return self.to("cuda")

    def _cast(dtype):  # noqa: N805 - builds the methods below
        def cast(self) -> Tensor:
            return self.to(dtype=dtype)

        return cast

    float, double, half, bfloat16 = (_cast(_dtypes.float32), _cast(_dtypes.float64),
                                     _cast(_dtypes.float16), _cast(_dtypes.bfloat16))
    long, int, bool = _cast(_dtypes.int64), _cast(_dtypes.int32), _cast(_dtypes.bool_)
    del _cast

    def new_tensor(self, data, dtype=None, requires_grad=False) -> Tensor:
        from .tensor import tensor

        return tensor(data, dtype=self.dtype if dtype is None else dtype, device=self.device,
                      requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, requires_grad=False) -> Tensor:
        return self._new(size, 0, dtype, requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad=False) -> Tensor:
        return self._new(size, 1, dtype, requires_grad)

    def new_full(self, size, fill_value, dtype=None, requires_grad=False) -> Tensor:
        return self._new((size,), fill_value, dtype, requires_grad)

    def new_empty(self, *size, dtype=None, requires_grad=False) -> Tensor:
        return self._new(size, 0, dtype, requires_grad)

    def _new(self, size, value, dtype, requires_grad) -> Tensor:
        shape = _ops()._shape_arg(size)
        arr = self._xp.full(shape, value, dtype=self.dtype if dtype is None else dtype)
        t = type(self)._wrap(arr, False)
        return t.requires_grad_(True) if requires_grad else t
