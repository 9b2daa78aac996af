"""In-place ops and item assignment, as PyTorch records them.

An in-place op computes the new value with the out-of-place Function, writes it into the
tensor's own storage (views and ``.numpy()`` arrays see it) and bumps the version counter.
When a gradient is involved it is recorded: the tensor gets the op's node as its new
producer, whose edge leads to the producer of the old value. On a view, the write is also
recorded on the base (``WriteView``, PyTorch's CopySlices) and the view is re-read from
the new base, so that both see the change in their gradients. A leaf that requires grad
(or a view of one) is refused outside ``no_grad``, with PyTorch's error.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function, _edge, is_grad_enabled, refresh_view
from ..kernels._checks import xp_of
from ..tensor import Tensor
from ._ops import Add, Sub, _key_arrays, _operand, unbroadcast


class IndexPut(Function):
    """a[key] = v, written into ``a`` itself: the untouched part of ``a`` gets the
    gradient, the written part goes to ``v`` (summed where ``v`` was broadcast)."""

    def forward(self, a, v, key):
        try:
            a[key] = v
        except ValueError as exc:
            raise RuntimeError(f"index_put: {exc}") from exc
        self.save_for_backward(key, v.shape)
        return a

    def backward(self, g):
        key, v_shape = self.saved
        ga = None
        if self.needs_grad[0]:
            ga = g.copy()
            ga[key] = 0
        gv = None
        if self.needs_grad[1]:
            gv = g[key]
            if gv.ndim < len(v_shape):
                gv = gv.reshape((1,) * (len(v_shape) - gv.ndim) + gv.shape)
            gv = unbroadcast(gv, v_shape)
        return ga, gv


class Fill(Function):
    """Every element replaced (fill_, zero_, normal_, uniform_): no gradient to the old."""

    def forward(self, a, value):
        a[...] = value
        return a

    def backward(self, g):
        return xp_of(g).zeros_like(g)


class CopyFrom(Function):
    """copy_(src): src broadcast and cast into ``a``."""

    def forward(self, a, src):
        try:
            a[...] = src
        except ValueError as exc:
            raise RuntimeError(f"copy_: {exc}") from exc
        self.save_for_backward(src.shape, src.dtype)
        return a

    def backward(self, g):
        shape, dtype = self.saved
        return xp_of(g).zeros_like(g), unbroadcast(g, shape).astype(dtype, copy=False)


class WriteView(Function):
    """The base after an in-place write through one of its views (``read`` maps the base
    to the view): the view's region takes the new view value's gradient."""

    def backward(self, g):
        ga = g.copy()
        self.read(ga)[...] = 0
        return ga, self.read(g).copy()


class ReadView(Function):
    """A view re-read from its base after an in-place write through it."""

    def backward(self, g):
        (shape,) = self.saved
        out = xp_of(g).zeros(shape, g.dtype)
        self.read(out)[...] = g
        return out


# the ops whose forward may run on the tensor's own storage: they keep no input value
_ON_STORAGE = (Add, Sub, IndexPut, Fill, CopyFrom)


def _check_target(self) -> None:
    if self.requires_grad and self._ctx is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    base = self._base
    if base is not None and base.requires_grad and base._ctx is None:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation.")


def apply(self: Tensor, fn_cls, *others, **params) -> Tensor:
    """Run ``fn_cls`` on (self, *others) and make the result ``self``'s new value."""
    others = tuple(_operand(o, self) for o in others)
    for t in (self,) + others:
        if t._base is not None and t._vc[0] != t._view_v:
            refresh_view(t)
    grad_on = is_grad_enabled()
    if grad_on:
        _check_target(self)
    fn = fn_cls()
    fn.needs_grad = (self.requires_grad,) + tuple(o.requires_grad for o in others)
    recording = grad_on and any(fn.needs_grad)
    old = self._data
    if recording and fn_cls not in _ON_STORAGE:
        old = old.copy()  # the node may keep it for backward; the storage changes below
    out = fn.forward(old, *(o._data for o in others), **params)
    if recording:
        fn.connect((self,) + others)
    _write(self, out)
    if recording:
        if self._base is None:
            self._ctx = fn
        else:
            _rebase_view(self, fn)
        self.requires_grad = True
    return self


def _write(self, out) -> None:
    data = self._data
    if out is not data:
        if tuple(out.shape) != tuple(data.shape):
            raise RuntimeError(f"output with shape {list(data.shape)} doesn't match the "
                               f"broadcast shape {list(out.shape)}")
        if out.dtype != data.dtype and not np.can_cast(out.dtype, data.dtype, "same_kind"):
            raise RuntimeError(f"result type {out.dtype} can't be cast to the desired output "
                               f"type {data.dtype}")
        try:
            data[...] = out
        except ValueError as exc:  # a read-only (expanded) view
            raise RuntimeError(f"unsupported operation: more than one element of the "
                               f"written-to tensor refers to a single memory location "
                               f"({exc})") from exc
    self._vc[0] += 1


def _rebase_view(view: Tensor, fn: Function) -> None:
    """Record the write through ``view`` on its base, and re-read the view from it."""
    base = view._base
    write = WriteView()
    write.read = view._view_fn
    write.needs_grad = (base.requires_grad, True)
    write.edges = (_edge(base), fn)
    base._ctx = write
    base.requires_grad = True
    read = ReadView()
    read.read = view._view_fn
    read.needs_grad = (True,)
    read.saved = (base.shape,)
    read.edges = (write,)
    view._ctx = read
    view._view_v = view._vc[0]


def fill(self: Tensor, value) -> Tensor:
    if isinstance(value, Tensor):
        value = value._data
    elif isinstance(value, np.ndarray) and self.is_cuda:
        value = self._xp.asarray(value)
    return apply(self, Fill, value=value)


def copy(self: Tensor, src) -> Tensor:
    if not isinstance(src, Tensor):
        src = Tensor._wrap(self._xp.asarray(src), False)
    if src.device != self.device:
        src = src.to(self.device)
    return apply(self, CopyFrom, src)


def setitem(self: Tensor, key, value) -> None:
    key = _key_arrays(key)
    if not isinstance(value, Tensor):
        value = Tensor._wrap(self._xp.asarray(value, dtype=self.dtype), False)
    elif value.device != self.device:
        value = value.to(self.device)
    apply(self, IndexPut, value, key=key)
