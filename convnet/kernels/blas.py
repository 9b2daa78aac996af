"""Matrix products: the GEMM kernel, and :func:`matmul`, which decides where a product runs."""

from __future__ import annotations

import numpy as np

from . import _checks as ck
from ._boundary import launch
from ._registry import default_cpu

__all__ = ["gemm", "matmul"]

_TINY = 32768  # M*N*K: about a microsecond of work (OpenBLAS threads above 262144)


def _overlaps(a, c) -> bool:
    if ck.is_cupy(a) != ck.is_cupy(c):
        return False
    return np.may_share_memory(a, c) if isinstance(a, np.ndarray) else (
        a.data.ptr < c.data.ptr + c.nbytes and c.data.ptr < a.data.ptr + a.nbytes)


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, backend=None):
    """``alpha * op(a) @ op(b) + beta * c`` with op = transpose when requested.

    a: (M, K), or (K, M) with ``trans_a``; b: (K, N), or (N, K) with ``trans_b``.
    ``c`` (M, N), when given, is updated in place and returned (it must be C-contiguous
    with the inputs' dtype, or float32 for 16-bit inputs: accumulation in float32);
    otherwise a new array of the inputs' dtype is returned (``beta`` then ignored).
    When ``a`` or ``b`` shares memory with ``c`` it is copied first, so the product is
    the one of the values before the call (as ``c[...] = alpha * a @ b + beta * c``).
    """
    a = ck.float_array("a", a)
    b = ck.float_array("b", b, a.dtype)
    ck.ndim("a", a, 2, "(matrix)")
    ck.ndim("b", b, 2, "(matrix)")
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    if c is None:
        c = ck.xp_of(a).empty((m, n), dtype=a.dtype)
        beta = 0.0
    else:
        if not (isinstance(c, np.ndarray) or ck.is_cupy(c)) or c.dtype not in (
                a.dtype, ck.stat_dtype(a.dtype)):
            raise TypeError(f"c: expected a {a.dtype} array, got {getattr(c, 'dtype', type(c))}")
        if not c.flags.c_contiguous:
            raise ValueError("c: must be C-contiguous (it is written in place)")
        if _overlaps(a, c):
            a = a.copy()
        if _overlaps(b, c):
            b = b.copy()
    launch("gemm", backend, a, b, c, alpha, beta, bool(trans_a), bool(trans_b))
    return c


def matmul(a, b, trans_a=False, trans_b=False):
    """``op(a) @ op(b)`` wherever it runs best: the GEMM kernel for float NumPy matrices of
    one dtype, the array library's product otherwise (cuBLAS for CuPy, NumPy's for mixed or
    integer dtypes, batched operands, and, unless ``use_backend`` picked another CPU backend,
    products of at most ``_TINY`` multiply-adds, where the kernel call's checks cost more
    than the product and OpenBLAS stays on one thread).
    The one place this choice is made."""
    if (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim == 2
            and b.ndim == 2 and a.dtype == b.dtype and a.dtype in ck.FLOAT_DTYPES
            and (a.size * b.shape[0 if trans_b else 1] > _TINY or default_cpu() != "native"
                 or a.dtype.itemsize == 2
                 or type(a) is not np.ndarray or type(b) is not np.ndarray)):
        # (use_backend("numba"), subclasses and 16-bit operands, whose NumPy product is
        # float32, keep the kernel for every size)
        return gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    return (a.T if trans_a else a) @ (b.T if trans_b else b)
