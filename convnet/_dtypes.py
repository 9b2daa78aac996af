"""PyTorch's dtype and device names for convnet.

A dtype is a NumPy dtype (``convnet.float32 is np.dtype("float32")``), so that a tensor's
``dtype`` compares equal to it and NumPy accepts it; bfloat16 comes from ``ml_dtypes``.
A device is a ``str`` subclass ('cpu' or 'cuda') with PyTorch's ``type`` and ``index``.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
bfloat16 = np.dtype(ml_dtypes.bfloat16)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
int16 = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

ALIASES = {
    "float32": float32, "float": float32, "float64": float64, "double": float64,
    "float16": float16, "half": float16, "bfloat16": bfloat16, "int64": int64,
    "long": int64, "int32": int32, "int": int32, "int16": int16, "short": int16,
    "int8": int8, "uint8": uint8, "bool": bool_,
}

FLOATING = (float16, bfloat16, float32, float64)


def is_dtype(value) -> bool:
    """True for what ``Tensor.to`` reads as a dtype rather than a device."""
    if isinstance(value, np.dtype):
        return True
    return isinstance(value, type) and issubclass(value, (np.generic, float, int, bool))


def as_dtype(value, name: str = "dtype") -> np.dtype:
    try:
        return np.dtype(value)
    except TypeError as exc:
        raise TypeError(f"{name}: expected a dtype such as convnet.float32, got {value!r}") \
            from exc


TYPE_NAMES = {"torch.FloatTensor": float32, "torch.DoubleTensor": float64,
               "torch.HalfTensor": float16, "torch.BFloat16Tensor": bfloat16,
               "torch.LongTensor": int64, "torch.IntTensor": int32,
               "torch.ShortTensor": int16, "torch.CharTensor": int8,
               "torch.ByteTensor": uint8, "torch.BoolTensor": bool_}


def type_name(dtype) -> str:
    for name, dt in TYPE_NAMES.items():
        if dt == dtype:
            return name
    return f"torch.{dtype}"


class device(str):  # noqa: N801 - PyTorch's name
    """``convnet.device('cuda:0')``: compares equal to 'cpu' / 'cuda' as a string does."""

    def __new__(cls, type_or_name="cpu", index=None):
        if isinstance(type_or_name, device):
            return type_or_name
        name = str(type_or_name)
        kind, _, num = name.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {type_or_name!r}")
        if num:
            if not num.isdigit():
                raise ValueError(f"device: bad device index in {type_or_name!r}")
            index = int(num)
        self = super().__new__(cls, kind)
        self.type = kind
        self.index = index
        return self

    def __repr__(self) -> str:
        idx = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{idx})"

    __hash__ = str.__hash__


CPU = device("cpu")
CUDA = device("cuda")
