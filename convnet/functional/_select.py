"""Selection, ordering and repetition ops: gather/scatter, index_select, masked_fill,
max/min along a dim, sort, topk, cumsum, expand, repeat, split, bmm and einsum.

Values picked by index (max/min along a dim, sort, topk) are a ``Gather`` of the input at
the indices, so their gradient goes to the chosen element only, as in PyTorch.
"""

from __future__ import annotations

import collections
import numbers

import numpy as np

from ..autograd import Function
from ..kernels._checks import xp_of
from ..tensor import Tensor
from ._ops import MatMul, Max, _axes, as_f32, unbroadcast

# PyTorch's torch.return_types: tuples whose fields are also named.
ReturnMax = collections.namedtuple("max", ["values", "indices"])
ReturnMin = collections.namedtuple("min", ["values", "indices"])
ReturnSort = collections.namedtuple("sort", ["values", "indices"])
ReturnTopk = collections.namedtuple("topk", ["values", "indices"])


def array_of(value):
    return value._data if isinstance(value, Tensor) else value


def value_of(value):
    """A fill value: a Python number, or a 0-d tensor read as one."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise RuntimeError(f"masked_fill only supports a 0-dimensional value tensor, "
                               f"got shape {value.shape}")
        return value.item()
    return value


def _dim(dim, ndim):
    return _axes(dim, ndim)[0]


def _scatter_add(xp, out, index, g, axis):
    """out[..., index[...], ...] += g along ``axis`` (repeated indices accumulate)."""
    # an open grid over index's shape (CuPy's indices has no sparse form)
    idx = [xp.arange(n).reshape([n if d == k else 1 for d in range(index.ndim)])
           for k, n in enumerate(index.shape)]
    idx[axis] = index
    if xp is np:
        np.add.at(out, tuple(idx), g)
    else:
        import cupyx

        cupyx.scatter_add(out, tuple(idx), g)
    return out


class Gather(Function):
    def forward(self, a, dim, index):
        axis = _dim(dim, a.ndim)
        index = index.astype(np.int64, copy=False)
        self.save_for_backward(a.shape, axis, index)
        # PyTorch lets the index be smaller than the input outside ``dim``
        a = a[tuple(slice(None) if d == axis else slice(0, n)
                    for d, n in enumerate(index.shape))]
        return xp_of(a).take_along_axis(a, index, axis=axis)

    def backward(self, g):
        shape, axis, index = self.saved
        xp = xp_of(g)
        return _scatter_add(xp, xp.zeros(shape, g.dtype), index, g, axis)


class Scatter(Function):
    """out = a with ``src`` written at ``index`` along ``dim`` (PyTorch's scatter)."""

    def forward(self, a, src, dim, index):
        xp = xp_of(a)
        axis = _dim(dim, a.ndim)
        index = index.astype(np.int64, copy=False)
        self.save_for_backward(axis, index, src.shape)
        # PyTorch reads only the part of src (and of a, outside dim) that index covers
        part = tuple(slice(0, n) for n in index.shape)
        src = xp.broadcast_to(src, index.shape) if src.ndim == 0 else src[part]
        out = a.copy()
        xp.put_along_axis(out[tuple(slice(None) if d == axis else p
                                    for d, p in enumerate(part))], index, src, axis=axis)
        return out

    def backward(self, g):
        axis, index, src_shape = self.saved
        xp = xp_of(g)
        part = tuple(slice(None) if d == axis else slice(0, n)
                     for d, n in enumerate(index.shape))
        ga = g.copy()
        xp.put_along_axis(ga[part], index, 0, axis=axis)
        gs = None
        if self.needs_grad[1]:
            taken = xp.take_along_axis(g[part], index, axis=axis)
            if not src_shape:
                gs = taken.sum()
            else:
                gs = xp.zeros(src_shape, g.dtype)
                gs[tuple(slice(0, n) for n in index.shape)] = taken
        return ga, gs


def scatter(self, dim, index, src, value, inplace):
    if (src is None) == (value is None):
        raise TypeError("scatter: pass exactly one of src (a tensor) or value (a number)")
    if value is not None or isinstance(src, numbers.Number):
        src = Tensor._wrap(self._xp.asarray(value if src is None else src, self.dtype), False)
    index = array_of(index)
    if inplace:
        from . import _inplace

        return _inplace.apply(self, Scatter, src, dim=dim, index=index)
    return Scatter.apply(self, src, dim=dim, index=index)


class IndexSelect(Function):
    def forward(self, a, dim, index):
        axis = _dim(dim, a.ndim)
        index = index.astype(np.int64, copy=False).reshape(-1)
        self.save_for_backward(a.shape, axis, index)
        return xp_of(a).take(a, index, axis=axis)

    def backward(self, g):
        shape, axis, index = self.saved
        xp = xp_of(g)
        out = xp.zeros(shape, g.dtype)
        key = (slice(None),) * axis + (index,)
        if xp is np:
            np.add.at(out, key, g)
        else:
            import cupyx

            cupyx.scatter_add(out, key, g)
        return out


class MaskedFill(Function):
    def forward(self, a, mask, value):
        xp = xp_of(a)
        mask = xp.asarray(mask, dtype=bool)
        self.save_for_backward(mask, a.shape)
        return xp.where(mask, a.dtype.type(value), a)

    def backward(self, g):
        mask, shape = self.saved
        return unbroadcast(xp_of(g).where(mask, g.dtype.type(0), g), shape)


class Cumsum(Function):
    def forward(self, a, dim):
        axis = _dim(dim, a.ndim)
        self.save_for_backward(axis)
        return xp_of(a).cumsum(a, axis=axis, dtype=a.dtype if a.dtype.kind == "f" else None)

    def backward(self, g):
        (axis,) = self.saved
        xp = xp_of(g)
        return xp.flip(xp.cumsum(xp.flip(g, axis), axis=axis), axis)


class Expand(Function):
    view = True

    def forward(self, a, shape):
        self.save_for_backward(a.shape)
        self.read = lambda arr: xp_of(arr).broadcast_to(arr, shape)
        return xp_of(a).broadcast_to(a, shape)

    def backward(self, g):
        (shape,) = self.saved
        return unbroadcast(g, shape)


def expand(self, sizes):
    lead = len(sizes) - self.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be "
                           f"greater or equal to the number of dimensions ({self.ndim})")
    shape = tuple(self.shape[i - lead] if n == -1 and i >= lead else n
                  for i, n in enumerate(sizes))
    return Expand.apply(self, shape=shape)


class Repeat(Function):
    def forward(self, a, reps):
        if len(reps) < a.ndim:
            raise RuntimeError("repeat: the number of repeat dims can not be smaller than "
                               "the number of dimensions of the tensor")
        lead = len(reps) - a.ndim
        shape = (1,) * lead + a.shape
        self.save_for_backward(shape, reps, a.shape)
        return xp_of(a).tile(a.reshape(shape), reps)

    def backward(self, g):
        shape, reps, orig = self.saved
        split = []
        for r, n in zip(reps, shape, strict=True):
            split += [r, n]
        return g.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(orig)


# --------------------------------------------------------------------------- ordering


def _with_dim(self, name, dim, keepdim, xp_fn):
    axis = _dim(dim, self.ndim)
    idx = xp_fn(self._data, axis=axis)
    idx = self._xp.expand_dims(idx, axis)
    values = Gather.apply(self, dim=axis, index=idx)
    if not keepdim:
        values = values.squeeze(axis)
        idx = idx.squeeze(axis)
    return values, Tensor._wrap(idx.astype(np.int64, copy=False), False)


def extreme(self, kind, dim, keepdim):
    """max()/min(): the whole reduction, or (values, indices) along ``dim``, or the
    element-wise maximum/minimum when ``dim`` is a tensor."""
    if isinstance(dim, Tensor):
        other = dim
        pick = self >= other if kind == "max" else self <= other
        from ._ops import where

        return where(pick, self, other)
    if dim is None:
        return Max.apply(self) if kind == "max" else -Max.apply(-self)
    xp = self._xp
    values, idx = _with_dim(self, kind, dim, keepdim, xp.argmax if kind == "max" else xp.argmin)
    return (ReturnMax if kind == "max" else ReturnMin)(values, idx)


def arg_extreme(self, name, dim, keepdim):
    xp = self._xp
    fn = getattr(xp, name)
    if dim is None:
        out = fn(self._data)
        if keepdim:
            out = out.reshape((1,) * self.ndim)
        return Tensor._wrap(xp.asarray(out, dtype=np.int64), False)
    axis = _dim(dim, self.ndim)
    out = fn(self._data, axis=axis)
    if keepdim:
        out = xp.expand_dims(out, axis)
    return Tensor._wrap(out.astype(np.int64, copy=False), False)


def logical(self, name, dim, keepdim):
    axes = _axes(dim, self.ndim)
    out = getattr(self._data.astype(bool, copy=False), name)(axis=axes, keepdims=keepdim)
    return Tensor._wrap(self._xp.asarray(out), False)


def sort(self, dim=-1, descending=False):
    xp = self._xp
    axis = _dim(dim, self.ndim) if self.ndim else 0
    if self.ndim == 0:
        return ReturnSort(self.clone(), Tensor._wrap(xp.zeros((), np.int64), False))
    if not descending:
        idx = xp.argsort(self._data, axis=axis, kind="stable")
    elif self.dtype.kind in "fi":  # negated, ties keep their order
        idx = xp.argsort(-self._data, axis=axis, kind="stable")
    else:
        idx = xp.flip(xp.argsort(self._data, axis=axis, kind="stable"), axis)
    values = Gather.apply(self, dim=axis, index=idx)
    return ReturnSort(values, Tensor._wrap(idx.astype(np.int64, copy=False), False))


def topk(self, k, dim=-1, largest=True):
    axis = _dim(dim, self.ndim)
    if not 0 <= k <= self.shape[axis]:
        raise RuntimeError(f"topk: k ({k}) is out of range for dimension {axis} of size "
                           f"{self.shape[axis]}")
    _, idx = sort(self, axis, descending=largest)
    idx = idx._data[(slice(None),) * axis + (slice(0, k),)]
    return ReturnTopk(Gather.apply(self, dim=axis, index=idx), Tensor._wrap(idx, False))


# --------------------------------------------------------------------------- splitting


def split(self, size_or_sections, dim=0):
    axis = _dim(dim, self.ndim)
    n = self.shape[axis]
    if isinstance(size_or_sections, numbers.Integral):
        step = int(size_or_sections)
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - s) for s in range(0, n, step)] or [0]
    else:
        sizes = [int(s) for s in size_or_sections]
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {axis}), but got "
                               f"split_sizes={sizes}")
    out, start = [], 0
    for s in sizes:
        out.append(self[(slice(None),) * axis + (slice(start, start + s),)])
        start += s
    return tuple(out)


def chunk(self, chunks, dim=0):
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = self.shape[_dim(dim, self.ndim)]
    return split(self, max(1, -(-n // chunks)), dim)


# --------------------------------------------------------------------------- products


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got {a.ndim}-D and {b.ndim}-D")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {a.shape[0]} and {b.shape[0]}")
    return MatMul.apply(a, b)


class Einsum(Function):
    """np.einsum for explicit or implicit subscripts without '...'; each operand's
    gradient is the einsum of the output gradient with the other operands."""

    def forward(self, *arrays, ins, out):
        xp = xp_of(arrays[0])
        self.save_for_backward(arrays, ins, out)
        # NumPy's einsum has no 16-bit loops: float32 compute, the result rounded once
        dtype = xp.result_type(*arrays)
        return xp.einsum(f"{','.join(ins)}->{out}", *map(as_f32, arrays)).astype(
            dtype, copy=False)

    def backward(self, g):
        arrays, ins, out = self.saved
        xp = xp_of(g)
        grads = []
        for i, sub in enumerate(ins):
            if not self.needs_grad[i]:
                grads.append(None)
                continue
            if len(set(sub)) != len(sub):
                raise NotImplementedError("einsum: gradients of repeated subscripts inside "
                                          "one operand (diagonals) are not supported")
            others = [(s, a) for j, (s, a) in enumerate(zip(ins, arrays, strict=True))
                      if j != i]
            have = set(out).union(*(set(s) for s, _ in others))
            target = "".join(c for c in sub if c in have)
            spec = ",".join([out] + [s for s, _ in others]) + "->" + target
            gi = xp.einsum(spec, as_f32(g), *(as_f32(a) for _, a in others))
            shape = arrays[i].shape
            expanded = gi.reshape([shape[k] if c in target else 1 for k, c in enumerate(sub)])
            grads.append(xp.broadcast_to(expanded, shape).astype(arrays[i].dtype))
        return tuple(grads)


def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise NotImplementedError("einsum: '...' (ellipsis) subscripts are not supported")
    if "->" in eq:
        lhs, out = eq.split("->")
    else:
        lhs = eq
        letters = lhs.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise ValueError(f"einsum: the equation names {len(ins)} operands, got "
                         f"{len(operands)}")
    return Einsum.apply(*operands, ins=tuple(ins), out=out)
