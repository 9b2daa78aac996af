"""Tensor: an array (NumPy on the CPU, CuPy on CUDA) with autograd.

The device of a tensor is the type of its array; ``_xp`` gives the matching array module,
which is how element-wise code is written once for both devices.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import autograd
from .kernels._checks import is_cupy as _is_cupy

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))



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
    name = str(device)
    if name == "cpu" or name == "cuda" or name.startswith("cuda:"):
        return "cuda" if name.startswith("cuda") else "cpu"
    raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")


def _to_array(data, dtype=None, device=None):
    """An array for ``data`` on ``device``; Python floats default to float32 as in PyTorch."""
    device = _normalize_device(device)
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = np.dtype(dtype)
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


class Tensor:
    """A multi-dimensional array with an optional gradient, like ``torch.Tensor``."""

    __array_priority__ = 1000  # NumPy defers mixed operators to Tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None, device=None):
        self.data = _to_array(data, dtype, device)
        self.grad: Tensor | None = None
        self._ctx = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array, requires_grad: bool, ctx=None) -> Tensor:
        t = cls.__new__(cls)
        t.data = array
        t.grad = None
        t._ctx = ctx
        t._retains_grad = False
        t.requires_grad = requires_grad
        return t

    # ------------------------------------------------------------------ properties
    @property
    def _xp(self):
        if _is_cupy(self.data):
            import cupy

            return cupy
        return np

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return "cuda" if _is_cupy(self.data) else "cpu"

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared memory on the CPU, like PyTorch)."""
        if self.device != "cpu":
            raise TypeError("numpy: the tensor is on 'cuda'; call .cpu() first")
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python number, "
                             f"got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.to("cpu").data.tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data, False)

    def detach_(self) -> Tensor:
        self._ctx = None
        self.requires_grad = False
        return self

    def clone(self) -> Tensor:
        from .functional import _ops

        return _ops.Clone.apply(self)

    def to(self, device=None, dtype=None) -> Tensor:
        """Copy to ``device`` ('cpu'/'cuda') and/or ``dtype``; differentiable."""
        if isinstance(device, (np.dtype, type)) and dtype is None:
            device, dtype = None, device
        target = self.device if device is None else _normalize_device(device)
        dt = self.dtype if dtype is None else np.dtype(dtype)
        if target == self.device and dt == self.dtype:
            return self
        from .functional import _ops

        return _ops.To.apply(self, device=target, dtype=dt)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(dtype=np.float32)

    def double(self) -> Tensor:
        return self.to(dtype=np.float64)

    def half(self) -> Tensor:
        return self.to(dtype=np.float16)

    def long(self) -> Tensor:
        return Tensor._wrap(self.data.astype(np.int64), False)

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.dtype not in _FLOATS:
            raise TypeError(f"requires_grad: only floating-point tensors can require "
                            f"gradients, got dtype {self.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_: you can only change the flag of leaf tensors "
                               "(use .detach() for a non-leaf)")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        self._retains_grad = True

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
        if self.grad is None:
            self.grad = Tensor._wrap(g.copy() if g is not None else g, False)
        else:
            self.grad.data = self.grad.data + g

    def zero_(self) -> Tensor:
        self.data[...] = 0
        return self

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        body = np.array2string(self.to("cpu").data if self.device == "cuda" else self.data,
                               separator=", ", prefix="tensor(")
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

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError("bool: the truth value of a tensor with more than one value is "
                               "ambiguous")
        return bool(self.data)

    def __hash__(self) -> int:
        return id(self)

    # Everything else (operators, math, shapes, reductions) is attached by
    # convnet.functional._ops so that each op lives in one place.


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
        data = data.data
    arr = _to_array(data, dtype, device)
    if arr is data:
        arr = arr.copy()
    return Tensor._wrap(arr, False).requires_grad_(requires_grad) if requires_grad else \
        Tensor._wrap(arr, False)
