"""Tensor arithmetic, math, shape and reduction ops: one Function each, forward and backward
side by side, written once for NumPy and CuPy through the array module ``xp``.
Operators and methods are attached to :class:`convnet.tensor.Tensor` at the bottom.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np

from .. import _dtypes
from .. import kernels as _kernels
from ..autograd import Function
from ..kernels._checks import is_cupy as _is_cupy
from ..kernels._checks import xp_of
from ..tensor import Tensor, _to_array, as_tensor

_SIXTEEN = (_dtypes.float16, _dtypes.bfloat16)


def acc_sum(a, axis=None, keepdims=False):
    """``a.sum``, accumulated in float32 for a 16-bit array (NumPy would add in bfloat16:
    ten thousand ones would sum to 256), rounded back to its dtype, as PyTorch does."""
    if a.dtype in _SIXTEEN:
        return a.sum(axis=axis, keepdims=keepdims, dtype=np.float32).astype(a.dtype)
    return a.sum(axis=axis, keepdims=keepdims)


def as_f32(a):
    """A 16-bit array as float32 (the compute type of the ops that need range or many
    additions); other arrays as they are."""
    return a.astype(np.float32) if a.dtype in _SIXTEEN else a


def compute_dtype(dtype):
    """float32 for a 16-bit dtype (the type 16-bit storage is computed in), else ``dtype``."""
    return np.dtype(np.float32) if dtype in _SIXTEEN else dtype


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach it."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = acc_sum(grad, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = acc_sum(grad, axis=axes, keepdims=True)
    return grad.reshape(shape)


# --------------------------------------------------------------------------- arithmetic


class Add(Function):
    def forward(self, a, b):
        self.save_for_backward(a.shape, b.shape)
        return a + b

    def backward(self, g):
        sa, sb = self.saved
        return unbroadcast(g, sa), unbroadcast(g, sb)


class Sub(Function):
    def forward(self, a, b):
        self.save_for_backward(a.shape, b.shape)
        return a - b

    def backward(self, g):
        sa, sb = self.saved
        return unbroadcast(g, sa), unbroadcast(-g, sb)


class Mul(Function):
    # Each operand is kept only when the other one's gradient needs it, so that an
    # in-place change of ``h`` after ``h * 3`` is allowed, as in PyTorch.
    def forward(self, a, b):
        ga, gb = self.needs_grad
        self.save_for_backward(a if gb else None, b if ga else None, a.shape, b.shape)
        return a * b

    def backward(self, g):
        a, b, sa, sb = self.saved
        return (unbroadcast(g * b, sa) if self.needs_grad[0] else None,
                unbroadcast(g * a, sb) if self.needs_grad[1] else None)


class Div(Function):
    def forward(self, a, b):
        self.save_for_backward(a if self.needs_grad[1] else None, b, a.shape)
        return a / b

    def backward(self, g):
        a, b, sa = self.saved
        ga = unbroadcast(g / b, sa) if self.needs_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if self.needs_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Pow(Function):
    """a ** b with a tensor exponent."""

    def forward(self, a, b):
        out = a**b
        self.save_for_backward(a, b, out)
        return out

    def backward(self, g):
        a, b, out = self.saved
        xp = xp_of(a)
        ga = unbroadcast(g * b * a ** (b - 1), a.shape) if self.needs_grad[0] else None
        gb = None
        if self.needs_grad[1]:
            safe = xp.where(a > 0, a, 1)
            gb = unbroadcast(g * out * xp.log(safe), b.shape)
        return ga, gb


class PowScalar(Function):
    def forward(self, a, exponent):
        self.save_for_backward(a, exponent)
        return a**exponent

    def backward(self, g):
        a, e = self.saved
        return g * e * a ** (e - 1)


class MatMul(Function):
    """Matrix product with NumPy's broadcasting rules for batched operands."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        out = _kernels.matmul(a, b)
        # NumPy's product of bfloat16 operands (the batched ones) is float32 with ml_dtypes:
        # the result keeps the operands' dtype, as PyTorch's
        dtype = np.result_type(a.dtype, b.dtype)
        return out if out.dtype == dtype else out.astype(dtype)

    def backward(self, g):
        a, b = self.saved
        xp = xp_of(a)
        ga = gb = None
        if a.ndim == 1 and b.ndim == 1:
            return (g * b if self.needs_grad[0] else None, g * a if self.needs_grad[1] else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        if self.needs_grad[0]:
            ga = g2 @ xp.swapaxes(b2, -1, -2)
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if self.needs_grad[1]:
            gb = xp.swapaxes(a2, -1, -2) @ g2
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


# --------------------------------------------------------------------------- math


class Exp(Function):
    def forward(self, a):
        out = xp_of(a).exp(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * out


class Log(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return xp_of(a).log(a)

    def backward(self, g):
        (a,) = self.saved
        return g / a


class Sqrt(Function):
    def forward(self, a):
        out = xp_of(a).sqrt(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g / (2 * out)


class Abs(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return xp_of(a).abs(a)

    def backward(self, g):
        (a,) = self.saved
        return g * xp_of(a).sign(a)


class Clip(Function):
    def forward(self, a, lo=None, hi=None):
        self.save_for_backward(a, lo, hi)
        return xp_of(a).clip(a, lo, hi)

    def backward(self, g):
        a, lo, hi = self.saved
        mask = xp_of(a).ones_like(a, dtype=bool)
        if lo is not None:
            mask &= a >= lo
        if hi is not None:
            mask &= a <= hi
        return g * mask


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g


class To(Function):
    """Copy across devices and/or dtypes; the gradient goes back the same way."""

    def forward(self, a, device, dtype):
        self.save_for_backward(a.dtype, "cuda" if _is_cupy(a) else "cpu")
        return _to_array(a, dtype, device)

    def backward(self, g):
        dtype, device = self.saved
        return _to_array(g, dtype, device)


# --------------------------------------------------------------------------- reductions


def _axes(dim, ndim):
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    out = []
    for d in dims:
        d = operator.index(d)
        if not -ndim <= d < max(ndim, 1):
            raise IndexError(f"dim: {d} is out of range for a {ndim}-D tensor")
        out.append(d % max(ndim, 1))
    return tuple(out)


def _expand_back(g, shape, axes, keepdim):
    """Reshape a reduced gradient so it broadcasts against the input's shape."""
    if axes is None:
        return g.reshape((1,) * len(shape)) if g.ndim == 0 or not keepdim else g
    if not keepdim:
        xp = xp_of(g)
        for ax in sorted(axes):
            g = xp.expand_dims(g, ax)
    return g


class Sum(Function):
    def forward(self, a, dim=None, keepdim=False):
        axes = _axes(dim, a.ndim)
        self.save_for_backward(a.shape, axes, keepdim)
        return acc_sum(a, axis=axes, keepdims=keepdim)

    def backward(self, g):
        shape, axes, keepdim = self.saved
        out = xp_of(g).empty(shape, dtype=g.dtype)  # (cheaper than broadcast_to + copy)
        out[...] = _expand_back(g, shape, axes, keepdim)
        return out


class Mean(Function):
    def forward(self, a, dim=None, keepdim=False):
        axes = _axes(dim, a.ndim)
        count = a.size if axes is None else int(np.prod([a.shape[i] for i in axes]))
        self.save_for_backward(a.shape, axes, keepdim, count)
        if a.dtype in _SIXTEEN:  # accumulated in float32, as acc_sum
            return a.mean(axis=axes, keepdims=keepdim, dtype=np.float32).astype(a.dtype)
        return a.mean(axis=axes, keepdims=keepdim)

    def backward(self, g):
        shape, axes, keepdim, count = self.saved
        g = _expand_back(g, shape, axes, keepdim) / count
        return xp_of(g).broadcast_to(g, shape).copy()


class Var(Function):
    def forward(self, a, dim=None, keepdim=False, correction=1):
        axes = _axes(dim, a.ndim)
        count = a.size if axes is None else int(np.prod([a.shape[i] for i in axes]))
        acc = np.float32 if a.dtype in _SIXTEEN else None  # float32 for 16-bit inputs
        mean = a.mean(axis=axes, keepdims=True, dtype=acc).astype(a.dtype, copy=False)
        self.save_for_backward(a, mean, axes, keepdim, count - correction)
        return a.var(axis=axes, keepdims=keepdim, ddof=correction, dtype=acc).astype(
            a.dtype, copy=False)

    def backward(self, g):
        a, mean, axes, keepdim, denom = self.saved
        g = _expand_back(g, a.shape, axes, keepdim)
        return g * 2 * (a - mean) / denom


class Max(Function):
    """Maximum over dims; ties share the gradient equally (as PyTorch's amax and max())."""

    def forward(self, a, dim=None, keepdim=False):
        axes = _axes(dim, a.ndim)
        out = a.max(axis=axes, keepdims=True)
        self.save_for_backward(a, out, axes, keepdim)
        return out if keepdim else (out.reshape(()) if axes is None else out.squeeze(axes))

    def backward(self, g):
        a, out, axes, keepdim = self.saved
        mask = (a == out).astype(a.dtype)
        mask /= mask.sum(axis=axes, keepdims=True)
        return _expand_back(g, a.shape, axes, keepdim) * mask


# --------------------------------------------------------------------------- shapes


class Reshape(Function):
    view = True

    def forward(self, a, shape):
        self.save_for_backward(a.shape)
        self.read = lambda arr: arr.reshape(shape)
        return a.reshape(shape)

    def backward(self, g):
        (shape,) = self.saved
        return g.reshape(shape)


class Permute(Function):
    view = True

    def forward(self, a, dims):
        self.save_for_backward(dims)
        self.read = lambda arr: arr.transpose(dims)
        return a.transpose(dims)

    def backward(self, g):
        (dims,) = self.saved
        return g.transpose(np.argsort(dims))


def _is_basic_index(key) -> bool:
    parts = key if isinstance(key, tuple) else (key,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer))
               and not isinstance(p, bool) for p in parts)


class Index(Function):
    view = True  # basic keys give a view; a fancy key's copy shares no memory

    def forward(self, a, key):
        self.save_for_backward(a.shape, a.dtype, key)
        self.read = lambda arr: arr[key]
        return a[key]

    def backward(self, g):
        shape, dtype, key = self.saved
        xp = xp_of(g)
        out = xp.zeros(shape, dtype=dtype)
        if _is_basic_index(key):
            # slices, ints, None and Ellipsis select each element at most once: a plain
            # assignment is exact and far faster than add.at
            out[key] = g
            return out
        # add.at accumulates repeated indices (fancy indexing may pick an element twice)
        from .. import kernels

        return kernels.scatter_add(out, key, g)


class Cat(Function):
    def forward(self, *arrays, dim=0):
        xp = xp_of(arrays[0])
        ndim = arrays[0].ndim
        axis = _axes(dim, ndim)[0]
        self.save_for_backward(axis, [a.shape[axis] for a in arrays])
        return xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        axis, sizes = self.saved
        xp = xp_of(g)
        return tuple(xp.split(g, np.cumsum(sizes)[:-1].tolist(), axis=axis))


class Stack(Function):
    def forward(self, *arrays, dim=0):
        xp = xp_of(arrays[0])
        axis = _axes(dim, arrays[0].ndim + 1)[0]
        self.save_for_backward(axis, len(arrays))
        return xp.stack(arrays, axis=axis)

    def backward(self, g):
        axis, n = self.saved
        xp = xp_of(g)
        return tuple(xp.squeeze(part, axis=axis) for part in xp.split(g, n, axis=axis))


class Where(Function):
    def forward(self, a, b, cond):
        self.save_for_backward(cond, a.shape, b.shape)
        return xp_of(a).where(cond, a, b)

    def backward(self, g):
        cond, sa, sb = self.saved
        zero = g.dtype.type(0)
        xp = xp_of(g)
        return (unbroadcast(xp.where(cond, g, zero), sa), unbroadcast(xp.where(cond, zero, g), sb))


# --------------------------------------------------------------------------- Tensor API
# (the helpers that Tensor's methods in convnet/tensor.py call)


def _operand(other, like: Tensor) -> Tensor:
    if isinstance(other, Tensor):
        return other
    if isinstance(other, numbers.Number):
        kind = like.dtype.kind
        # PyTorch's promotion: an integer tensor with a Python float is float32, a bool
        # tensor with a Python int is int64
        if kind in "biu" and isinstance(other, float) and not isinstance(other, bool):
            return Tensor._wrap(like._xp.asarray(other, dtype=np.float32), False)
        if kind == "b" and not isinstance(other, bool):
            return Tensor._wrap(like._xp.asarray(other, dtype=np.int64), False)
        return as_tensor(other, like)
    return Tensor._wrap(_to_array(other, None if hasattr(other, "dtype") else like.dtype,
                                  like.device), False)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def compare(self, other, name):
    other = other._data if isinstance(other, Tensor) else other
    return Tensor._wrap(getattr(self._data, name)(other), False)


def pow(self, exponent):  # noqa: A001 - the op's name
    if isinstance(exponent, numbers.Number):
        return PowScalar.apply(self, exponent=exponent)
    return Pow.apply(self, _operand(exponent, self))


def reduce(fn, self, dim, keepdim, dtype, axis):
    if axis is not None:
        dim = axis
    if dtype is not None:
        self = self.to(dtype=dtype)
    elif self.dtype.kind in "biu" and fn is Sum:
        self = self.to(dtype=np.int64)  # PyTorch sums integers and bools as int64
    return fn.apply(self, dim=dim, keepdim=keepdim)


def var(self, dim, unbiased, keepdim, correction, axis):
    if axis is not None:
        dim = axis
    if isinstance(dim, bool):  # var(unbiased): PyTorch's old overload
        dim, unbiased = None, dim
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    elif unbiased is not None:
        raise ValueError("var: pass either unbiased= or correction=, not both")
    return Var.apply(self, dim=dim, keepdim=keepdim, correction=correction)


def _key_arrays(key):
    if isinstance(key, Tensor):
        return key._data
    if isinstance(key, tuple):
        return tuple(k._data if isinstance(k, Tensor) else k for k in key)
    if isinstance(key, list) and any(isinstance(k, Tensor) for k in key):
        return [k.item() if isinstance(k, Tensor) else k for k in key]
    return key


def getitem(self, key):
    return Index.apply(self, key=_key_arrays(key))


def transpose(self, dim0=-2, dim1=-1):
    dims = list(range(self.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(self, dims=tuple(dims))


def flatten(self, start_dim=0, end_dim=-1):
    shape = self.shape
    if not shape:
        return Reshape.apply(self, shape=(1,))
    s, e = start_dim % len(shape), end_dim % len(shape)
    new = shape[:s] + (int(np.prod(shape[s : e + 1])),) + shape[e + 1 :]
    return Reshape.apply(self, shape=new)


def squeeze(self, dim=None):
    if dim is None:
        return Reshape.apply(self, shape=tuple(n for n in self.shape if n != 1))
    d = dim % self.ndim
    if self.shape[d] != 1:
        return self
    return Reshape.apply(self, shape=self.shape[:d] + self.shape[d + 1 :])


def unsqueeze(self, dim):
    d = dim % (self.ndim + 1)
    return Reshape.apply(self, shape=self.shape[:d] + (1,) + self.shape[d:])


def cat(tensors, dim=0, *, axis=None) -> Tensor:
    if axis is not None:
        dim = axis
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim=0, *, axis=None) -> Tensor:
    if axis is not None:
        dim = axis
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: expected tensors of one shape, got {sorted(shapes)}")
    return Stack.apply(*tensors, dim=dim)


def where(condition, a, b) -> Tensor:
    cond = condition._data if isinstance(condition, Tensor) else condition
    like = a if isinstance(a, Tensor) else b
    return Where.apply(_operand(a, like), _operand(b, like), cond=cond)
