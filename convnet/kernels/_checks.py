"""Argument checking and normalisation shared by every array-level kernel.

Everything a user can get wrong is refused here, before any kernel runs, with a
ValueError/TypeError naming the argument and what it got. Non-contiguous arrays are
copied to C order (documented in :mod:`convnet.kernels`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import ml_dtypes
import numpy as np

SIXTEEN_BIT = (np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16))
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), *SIXTEEN_BIT)


def stat_dtype(dtype):
    """The dtype of statistics and accumulators for a call of ``dtype``: float32 for the
    16-bit types (the manifest's STAT arguments), else ``dtype`` itself."""
    return np.dtype(np.float32) if dtype in SIXTEEN_BIT else dtype



def positive_int(name: str, v) -> int:
    """``v`` as an int >= 1; TypeError for a non-integer, ValueError for < 1."""
    try:
        v = operator.index(v)
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {v!r}") from None
    if v < 1:
        raise ValueError(f"{name}: must be >= 1, got {v}")
    return v

def is_cupy(a) -> bool:
    t = type(a)
    return t is not np.ndarray and t.__module__.startswith("cupy")


def float_array(name: str, a, dtype=None):
    """A C-contiguous float array (float32, float64, bfloat16 or float16; NumPy or CuPy);
    ``dtype`` pins the dtype (a tuple: one of them)."""
    if not (isinstance(a, np.ndarray) or is_cupy(a)):
        raise TypeError(f"{name}: expected a NumPy or CuPy array, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64 (or bfloat16, float16), got "
                        f"dtype {a.dtype}")
    if dtype is not None and a.dtype not in (dtype if isinstance(dtype, tuple) else (dtype,)):
        want = " or ".join(map(str, dtype)) if isinstance(dtype, tuple) else dtype
        raise TypeError(f"{name}: dtype {a.dtype} differs from the other inputs' {want}")
    if not a.flags.c_contiguous:
        xp = xp_of(a)
        a = xp.ascontiguousarray(a)
    return a


def ndim(name: str, a, n: int, what: str):
    if a.ndim != n:
        raise ValueError(f"{name}: expected a {n}-D array {what}, got shape {tuple(a.shape)}")


def xp_of(a):
    """The array module (NumPy or CuPy) of ``a``."""
    if type(a) is not np.ndarray and is_cupy(a):
        import cupy

        return cupy
    return np


def same_device(**arrays) -> None:
    """Refuse a mix of NumPy (host) and CuPy (device) arrays."""
    kinds = {name: ("cuda" if is_cupy(a) else "cpu") for name, a in arrays.items() if a is not None}
    if len(set(kinds.values())) > 1:
        desc = ", ".join(f"{k} on {v}" for k, v in kinds.items())
        raise ValueError(f"arrays are on different devices: {desc}")


def pair(name: str, v, positive: bool = True) -> tuple[int, int]:
    """An int or a pair of ints, as (h, w)."""
    if type(v) is int and v >= positive:  # the usual cases, without the Sequence ABC check
        return v, v
    if (type(v) is tuple and len(v) == 2 and type(v[0]) is int and type(v[1]) is int
            and v[0] >= positive and v[1] >= positive):
        return v
    if isinstance(v, Sequence) and not isinstance(v, str):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or a pair (h, w), got {v!r}")
        vals = tuple(v)
    else:
        vals = (v, v)
    out = []
    for x in vals:
        try:
            i = operator.index(x)
        except TypeError:
            raise TypeError(f"{name}: expected ints, got {v!r}") from None
        if positive and i < 1:
            raise ValueError(f"{name}: must be >= 1, got {v!r}")
        if not positive and i < 0:
            raise ValueError(f"{name}: must be >= 0, got {v!r}")
        out.append(i)
    return out[0], out[1]


def conv_padding(padding, in_hw, kernel_hw, stride, dilation) -> tuple[int, int, int, int]:
    """Normalise padding to (top, bottom, left, right).

    ``int`` or ``(ph, pw)``: symmetric. ``((top, bottom), (left, right))``: explicit.
    ``"valid"``: none. ``"same"``: TensorFlow/Keras's SAME, output = ceil(input / stride),
    the odd pixel of padding going to the bottom/right (PyTorch's "same" for stride 1).
    """
    if type(padding) is int and padding >= 0:
        return padding, padding, padding, padding
    if (type(padding) is tuple and len(padding) == 2 and type(padding[0]) is int
            and type(padding[1]) is int and padding[0] >= 0 and padding[1] >= 0):
        return padding[0], padding[0], padding[1], padding[1]
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return 0, 0, 0, 0
        if mode == "same":
            pads = []
            for size, k, s, d in zip(in_hw, kernel_hw, stride, dilation, strict=True):
                out = math.ceil(size / s)
                total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
                pads += [total // 2, total - total // 2]
            return pads[0], pads[1], pads[2], pads[3]
        raise ValueError(f"padding: expected an int, a pair, 'same' or 'valid', got {padding!r}")
    if (
        isinstance(padding, Sequence)
        and len(padding) == 2
        and all(isinstance(p, Sequence) for p in padding)
    ):
        (t, b), (left, right) = pair("padding", padding[0], False), pair(
            "padding", padding[1], False
        )
        return t, b, left, right
    ph, pw = pair("padding", padding, positive=False)
    return ph, ph, pw, pw


def conv_output_hw(in_hw, kernel_hw, stride, pads, dilation, what: str) -> tuple[int, int]:
    t, b, left, right = pads
    out = []
    for size, k, s, d, lo, hi in zip(
        in_hw, kernel_hw, stride, dilation, (t, left), (b, right), strict=True
    ):
        span = (k - 1) * d + 1
        if size + lo + hi < span:
            raise ValueError(
                f"{what}: kernel (extent {span} with dilation {d}) is larger than the padded "
                f"input ({size} + {lo} + {hi} padding)"
            )
        out.append((size + lo + hi - span) // s + 1)
    return out[0], out[1]


def shape4(name: str, shape, empty_batch: bool = False) -> tuple[int, int, int, int]:
    """4 positive sizes; with ``empty_batch`` the first (N) may be 0, as PyTorch allows."""
    if type(shape) is tuple and len(shape) == 4 and all(type(d) is int for d in shape):
        if min(shape[1:]) >= 1 and shape[0] >= (0 if empty_batch else 1):
            return shape  # the usual case: a tuple of Python ints, nothing to convert
    try:
        dims = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"{name}: expected a tuple of 4 ints, got {shape!r}") from None
    if len(dims) != 4 or min(dims[1:]) < 1 or dims[0] < (0 if empty_batch else 1):
        raise ValueError(f"{name}: expected 4 positive sizes (N, C, H, W), got {shape!r}")
    return dims  # type: ignore[return-value]


def output_grad(dy, expected, dtype):
    """The gradient of an output: a float array of the output's shape."""
    dy = float_array("dy", dy, dtype)
    if tuple(dy.shape) != tuple(expected):
        raise ValueError(f"dy: expected the output shape {tuple(expected)}, got {tuple(dy.shape)}")
    return dy
