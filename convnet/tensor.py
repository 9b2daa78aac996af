"""Tensor: an array (NumPy on the CPU, CuPy on CUDA) with autograd.

The device of a tensor is the type of its array; ``_xp`` gives the matching array module,
which is how element-wise code is written once for both devices. Every method is declared
here; each delegates to the one Function (``convnet.functional``) that implements it.
In-place ops and item assignment live in ``functional._inplace``.

A tensor's array is ``_data``; ``.data`` is, as in PyTorch, another Tensor on the same
storage, cut from the graph. ``_vc`` is the version counter (a one-element list shared by
every view of the same storage), bumped by each in-place write.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _dtypes, autograd
from ._arrays import _cupy, _normalize_device, _to_array  # noqa: F401 - re-exported
from ._tensor_conversion import Conversions
from .kernels._checks import is_cupy as _is_cupy
from .memory import track as _track

_FLOATS = _dtypes.FLOATING
_SIXTEEN = (_dtypes.float16, _dtypes.bfloat16)


def _binary(name):
    """``x OP y`` and ``y OP x`` for the Function ``_ops.<name>``; numbers and arrays are
    made tensors of ``x``'s dtype and device first."""

    def op(self, other):
        if self.dtype in _SIXTEEN and isinstance(other, numbers.Real):
            return _with_scalar(getattr(_ops, name), self, other, False)
        return _apply_promoted(getattr(_ops, name), self, _ops._operand(other, self))

    def rop(self, other):
        if self.dtype in _SIXTEEN and isinstance(other, numbers.Real):
            return _with_scalar(getattr(_ops, name), self, other, True)
        return _apply_promoted(getattr(_ops, name), _ops._operand(other, self), self)

    op.__name__, rop.__name__ = f"__{name.lower()}__", f"__r{name.lower()}__"
    return op, rop


def _with_scalar(fn, t, number, reflected):
    """A 16-bit tensor with a Python number: computed in float32 with the number unrounded
    and rounded once to the tensor's dtype, as PyTorch does (``x * 65536.0`` in float16
    would otherwise round the number to inf first)."""
    s = Tensor._wrap(t._xp.asarray(number, dtype=np.float32), False)
    out = fn.apply(s, t) if reflected else fn.apply(t, s)
    return out if out.dtype == t.dtype else out.to(dtype=t.dtype)


def _apply_promoted(fn, a, b):
    """``fn`` on ``a`` and ``b`` with PyTorch's result dtype where NumPy's differs: a 0-d
    float tensor takes the dtype of a float tensor with dimensions (bfloat16 times a
    float32 scalar tensor is bfloat16), and a float tensor with an integer or bool one
    gives the float's dtype (NumPy widens int64 with float32 to float64). The op runs in
    NumPy's wider type and its result is rounded once, as PyTorch computes in float32."""
    out = fn.apply(a, b)
    da, db = a.dtype, b.dtype
    if da == db:
        return out
    fa, fb = da in _FLOATS, db in _FLOATS
    want = None
    if fa and fb and (a.ndim == 0) != (b.ndim == 0):
        want = db if a.ndim == 0 else da
    elif fa != fb:
        want = da if fa else db
    return out if want is None or out.dtype == want else out.to(dtype=want)


def _compare(name):
    def op(self, other):
        return _ops.compare(self, other, f"__{name}__")

    op.__name__ = name
    return op


class Tensor(Conversions):
    """A multi-dimensional array with an optional gradient, like ``torch.Tensor``."""

    __array_priority__ = 1000  # NumPy defers mixed operators to Tensor
    _base = None  # the tensor whose storage a view reads, how it reads it, and the
    _view_fn = None  # storage's version when the view's producer was recorded
    _view_v = 0

    def __init__(self, data, requires_grad: bool = False, dtype=None, device=None):
        self._data = _to_array(data, dtype, device)
        _track(self._data)
        self._vc = [0]
        self.grad: Tensor | None = None
        self._ctx = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array, requires_grad: bool, ctx=None) -> Tensor:
        t = cls.__new__(cls)
        t._data = array
        _track(array)
        t._vc = [0]
        t.grad = None
        t._ctx = ctx
        t.requires_grad = requires_grad
        return t

    # ------------------------------------------------------------------ properties
    @property
    def data(self) -> Tensor:
        """The same storage as a tensor outside the graph (its own version counter)."""
        return Tensor._wrap(self._data, False)

    @data.setter
    def data(self, value) -> None:
        self._data = value._data if isinstance(value, Tensor) else _to_array(value)
        _track(self._data)

    @property
    def _version(self) -> int:
        return self._vc[0]

    @property
    def _xp(self):
        if _is_cupy(self._data):
            import cupy

            return cupy
        return np

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self) -> _dtypes.device:
        return _dtypes.CUDA if _is_cupy(self._data) else _dtypes.CPU

    @property
    def is_cuda(self) -> bool:
        return _is_cupy(self._data)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def dim(self) -> int:
        return self._data.ndim

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self._data.size)

    def is_floating_point(self) -> bool:
        return self.dtype in _FLOATS

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    # ------------------------------------------------------------------ conversion
    # numpy, item, int(), float(), bool(), operator.index, format, tolist, __array__,
    # __dlpack__, to, type, type_as, cpu, cuda, float/double/half/bfloat16/long/int/bool
    # and new_tensor/new_zeros/new_ones/new_full/new_empty: see Conversions

    def detach(self) -> Tensor:
        """The same storage and version counter, cut from the graph."""
        t = Tensor._wrap(self._data, False)
        t._vc = self._vc
        return t

    def detach_(self) -> Tensor:
        self._ctx = None
        self.requires_grad = False
        return self

    def clone(self) -> Tensor:
        return _ops.Clone.apply(self)

    def contiguous(self) -> Tensor:
        return self if self._data.flags.c_contiguous else self.clone()

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.dtype not in _FLOATS:
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, "
                               f"got dtype {self.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. "
                               "If you want to use a computed variable in a subgraph that "
                               "doesn't require differentiation use var_no_grad = var.detach().")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        if self._ctx is not None:
            self._ctx.retained = self

    @property
    def retains_grad(self) -> bool:
        return self._ctx is not None and self._ctx.retained is self

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` each time the backward pass has accumulated this leaf's
        ``.grad``, like PyTorch's; returns a handle whose ``remove()`` unregisters it."""
        if not self.is_leaf:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require "
                               "gradient")
        hooks = self.__dict__.setdefault("_post_accumulate_hooks", {})
        key = max(hooks, default=-1) + 1
        hooks[key] = hook
        return _HookHandle(hooks, key)

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        autograd.backward(self, gradient, retain_graph)

    def _accumulate(self, g) -> None:
        if g.dtype != self._data.dtype and self._data.dtype in _FLOATS:
            g = g.astype(self._data.dtype)  # a gradient has its tensor's dtype, as PyTorch
        if self.grad is None:
            g = g.copy()
            if isinstance(g, np.generic):  # a NumPy scalar: keep a 0-d array
                g = np.asarray(g)
            self.grad = Tensor._wrap(g, False)
        else:
            self.grad._data = self.grad._data + g
            _track(self.grad._data)

    # ------------------------------------------------------------------ in place
    # (recorded in the graph when grad is on, refused on a leaf that requires grad)
    def __setitem__(self, key, value) -> None:
        _inplace.setitem(self, key, value)

    def add_(self, other, alpha=1) -> Tensor:
        other = other if alpha == 1 else other * alpha
        return _inplace.apply(self, _ops.Add, other)

    def sub_(self, other, alpha=1) -> Tensor:
        other = other if alpha == 1 else other * alpha
        return _inplace.apply(self, _ops.Sub, other)

    def mul_(self, other) -> Tensor:
        return _inplace.apply(self, _ops.Mul, other)

    def div_(self, other) -> Tensor:
        return _inplace.apply(self, _ops.Div, other)

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    def clamp_(self, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
        return _inplace.apply(self, _ops.Clip, lo=min, hi=max)

    clip_ = clamp_

    def zero_(self) -> Tensor:
        return _inplace.fill(self, 0)

    def fill_(self, value) -> Tensor:
        return _inplace.fill(self, value)

    def copy_(self, src, non_blocking=False) -> Tensor:
        return _inplace.copy(self, src)

    def normal_(self, mean=0.0, std=1.0) -> Tensor:
        return _inplace.fill(self, _random.randn(self.shape, np.float64) * std + mean)

    def uniform_(self, a=0.0, b=1.0) -> Tensor:
        return _inplace.fill(self, _random.uniform(a, b, self.shape, np.float64))

    def masked_fill_(self, mask, value) -> Tensor:
        return _inplace.apply(self, _select.MaskedFill, mask=_select.array_of(mask),
                              value=_select.value_of(value))

    def scatter_(self, dim, index, src=None, value=None) -> Tensor:
        return _select.scatter(self, dim, index, src, value, inplace=True)

    def relu_(self) -> Tensor:
        return _F.relu(self, inplace=True)

    # ------------------------------------------------------------------ arithmetic
    __add__, __radd__ = _binary("Add")
    __sub__, __rsub__ = _binary("Sub")
    __mul__, __rmul__ = _binary("Mul")
    __truediv__, __rtruediv__ = _binary("Div")
    __matmul__, __rmatmul__ = _binary("MatMul")

    def __pow__(self, exponent):
        return _ops.pow(self, exponent)

    def __rpow__(self, base):
        return _ops.Pow.apply(_ops._operand(base, self), self)

    def __neg__(self):
        return _ops.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.Abs.apply(self)

    def add(self, other, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def matmul(self, other):
        return self @ other

    mm = matmul

    def bmm(self, other):
        return _select.bmm(self, other)

    def pow(self, exponent):
        return _ops.pow(self, exponent)

    def neg(self):
        return -self

    def exp(self):
        return _ops.Exp.apply(self)

    def log(self):
        return _ops.Log.apply(self)

    def sqrt(self):
        return _ops.Sqrt.apply(self)

    def abs(self):
        return _ops.Abs.apply(self)

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        return _ops.Clip.apply(self, lo=min, hi=max)

    clip = clamp

    def relu(self):
        return _F.relu(self)

    def sigmoid(self):
        return _F.sigmoid(self)

    def tanh(self):
        return _F.tanh(self)

    def softmax(self, dim):
        return _F.softmax(self, dim)

    def log_softmax(self, dim):
        return _F.log_softmax(self, dim)

    # ------------------------------------------------------------------ comparison
    eq, ne, lt, le, gt, ge = (_compare(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
    __eq__, __ne__, __lt__, __le__, __gt__, __ge__ = eq, ne, lt, le, gt, ge

    def __hash__(self) -> int:
        return id(self)

    def all(self, dim=None, keepdim=False):
        return _select.logical(self, "all", dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return _select.logical(self, "any", dim, keepdim)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False, *, dtype=None, axis=None):
        return _ops.reduce(_ops.Sum, self, dim, keepdim, dtype, axis)

    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None):
        return _ops.reduce(_ops.Mean, self, dim, keepdim, dtype, axis)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None):
        return _ops.var(self, dim, unbiased, keepdim, correction, axis)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None):
        return _ops.var(self, dim, unbiased, keepdim, correction, axis).sqrt()

    def norm(self, p=2, dim=None, keepdim=False):
        """The p-norm over ``dim`` (all elements by default); p = 2, 1 or inf."""
        if p == 2 or p == "fro":
            return (self * self).sum(dim, keepdim).sqrt()
        if p == 1:
            return self.abs().sum(dim, keepdim)
        if p == float("inf"):
            return self.abs().amax(dim, keepdim)
        return (self.abs() ** p).sum(dim, keepdim) ** (1.0 / p)

    def max(self, dim=None, keepdim=False, *, axis=None):
        return _select.extreme(self, "max", dim if axis is None else axis, keepdim)

    def min(self, dim=None, keepdim=False, *, axis=None):
        return _select.extreme(self, "min", dim if axis is None else axis, keepdim)

    def amax(self, dim=None, keepdim=False):
        return _ops.Max.apply(self, dim=dim, keepdim=keepdim)

    def amin(self, dim=None, keepdim=False):
        return -_ops.Max.apply(-self, dim=dim, keepdim=keepdim)

    def argmax(self, dim=None, keepdim=False, *, axis=None):
        return _select.arg_extreme(self, "argmax", dim if axis is None else axis, keepdim)

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        return _select.arg_extreme(self, "argmin", dim if axis is None else axis, keepdim)

    def cumsum(self, dim, *, dtype=None):
        return _select.Cumsum.apply(self if dtype is None else self.to(dtype=dtype), dim=dim)

    def sort(self, dim=-1, descending=False, stable=False):
        return _select.sort(self, dim, descending)

    def argsort(self, dim=-1, descending=False, stable=False):
        return _select.sort(self, dim, descending).indices

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - PyTorch's name
        return _select.topk(self, k, dim, largest)

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, key):
        return _ops.getitem(self, key)

    def gather(self, dim, index):
        return _select.Gather.apply(self, dim=dim, index=_select.array_of(index))

    def scatter(self, dim, index, src=None, value=None):
        return _select.scatter(self, dim, index, src, value, inplace=False)

    def index_select(self, dim, index):
        return _select.IndexSelect.apply(self, dim=dim, index=_select.array_of(index))

    def masked_fill(self, mask, value):
        return _select.MaskedFill.apply(self, mask=_select.array_of(mask),
                                        value=_select.value_of(value))

    # ------------------------------------------------------------------ shapes
    def view(self, *shape):
        if len(shape) == 1 and _dtypes.is_dtype(shape[0]):
            raise NotImplementedError("view(dtype): reinterpreting bytes is not supported")
        return _ops.Reshape.apply(self, shape=_ops._shape_arg(shape))

    reshape = view

    def view_as(self, other):
        return self.view(other.shape)

    reshape_as = view_as

    def expand(self, *sizes):
        return _select.expand(self, _ops._shape_arg(sizes))

    def expand_as(self, other):
        return _select.expand(self, other.shape)

    def repeat(self, *sizes):
        return _select.Repeat.apply(self, reps=_ops._shape_arg(sizes))

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.flatten(self, start_dim, end_dim)

    def squeeze(self, dim=None):
        return _ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _ops.unsqueeze(self, dim)

    def permute(self, *dims):
        return _ops.Permute.apply(self, dims=_ops._shape_arg(dims))

    def transpose(self, dim0=-2, dim1=-1):
        return _ops.transpose(self, dim0, dim1)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                               f"{self.ndim}D")
        return self if self.ndim < 2 else self.transpose(0, 1)

    def split(self, split_size_or_sections, dim=0):
        return _select.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _select.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return tuple(self.select(dim, i) for i in range(self.shape[dim]))

    def select(self, dim, index):
        key = (slice(None),) * (dim % self.ndim) + (index,)
        return self[key]

    def narrow(self, dim, start, length):
        key = (slice(None),) * (dim % self.ndim) + (slice(start, start + length),)
        return self[key]

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        body = np.array2string(self.__array__(), separator=", ", prefix="tensor(")
        extra = []
        if self.dtype != np.float32:
            extra.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extra.append(f"device='{self.device}'")
        if self._ctx is not None:
            extra.append(f"grad_fn=<{type(self._ctx).__name__}Backward>")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return f"tensor({body}{', ' + ', '.join(extra) if extra else ''})"


class _HookHandle:
    def __init__(self, hooks: dict, key: int):
        self.hooks, self.key = hooks, key

    def remove(self) -> None:
        self.hooks.pop(self.key, None)


def as_tensor(value, like: Tensor | None = None) -> Tensor:
    """A Tensor for ``value``; a Python number takes ``like``'s dtype and device."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, numbers.Number):
        return Tensor._wrap(like._xp.asarray(value, dtype=like.dtype), False)
    return Tensor(value)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor copying ``data`` (a NumPy array keeps its dtype, Python floats become
    float32), like ``torch.tensor``."""
    if isinstance(data, Tensor):
        data = data._data
    elif isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in data):
        data = [d.tolist() if isinstance(d, Tensor) else d for d in data]
    arr = _to_array(data, dtype, device)
    if arr is data or (arr.base is not None and not arr.flags.owndata):
        arr = arr.copy()
    t = Tensor._wrap(arr, False)
    return t.requires_grad_(True) if requires_grad else t


autograd._types[:] = [Tensor, as_tensor]

# The ops import Tensor from here, so they come last.
from . import random as _random  # noqa: E402
from .functional import _inplace, _ops, _select  # noqa: E402
from .functional import _nn as _F  # noqa: E402
