"""Collectives on Tensors and arrays, PyTorch's ``torch.distributed`` signatures.

Tensors are updated in place (their storage keeps its identity, as in PyTorch); NumPy
arrays likewise. A collective is MPI's blocking call under the process group's timeout
watchdog; ``async_op=True`` starts MPI's non-blocking call and returns its :class:`Work`.
CuPy arrays go through :mod:`._gpu` (CUDA-aware MPI or staged through pinned host
memory).
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from . import _gpu
from ._group import _get, _mpi, run_blocking, wait_requests


class ReduceOp:
    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


_OPS = (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX)


_MPI_OPS: dict = {}


def _mpi_op(op):
    if not _MPI_OPS:
        MPI = _mpi()
        _MPI_OPS.update({ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM,
                         ReduceOp.PRODUCT: MPI.PROD, ReduceOp.MIN: MPI.MIN,
                         ReduceOp.MAX: MPI.MAX})
    return _MPI_OPS[op]


def _check_op(op, dtype):
    if op not in _OPS:
        raise ValueError(f"op: expected one of ReduceOp.SUM/AVG/PRODUCT/MIN/MAX, got {op!r}")
    if op == ReduceOp.AVG and np.dtype(dtype).kind not in "fc":
        raise TypeError(f"op: ReduceOp.AVG needs a floating-point tensor, got dtype {dtype}")


def _array(obj, name: str):
    """The array behind a Tensor or an array argument."""
    if isinstance(obj, Tensor):
        return obj._data
    if isinstance(obj, np.ndarray) or _gpu.is_cupy(obj):
        return obj
    raise TypeError(f"{name}: expected a convnet Tensor or an array, got "
                    f"{type(obj).__name__}")


# MPI has no half-precision types: those travel as float32 and come back rounded once.
_WIDEN = {np.dtype(np.float16): np.dtype(np.float32)}
try:
    import ml_dtypes

    _WIDEN[np.dtype(ml_dtypes.bfloat16)] = np.dtype(np.float32)
except ImportError:  # pragma: no cover
    pass


class _Buffer:
    """A contiguous buffer MPI can read and write for ``arr``, and how to copy it back:
    ``arr`` itself when it is contiguous, of an MPI type and in host memory (or device
    memory with CUDA-aware MPI); otherwise a staging copy."""

    def __init__(self, arr):
        self.arr = arr
        self.stage = _gpu.stager_for(arr)
        wide = _WIDEN.get(np.dtype(arr.dtype))
        if self.stage is None and wide is None and arr.flags.c_contiguous:
            self.buf = arr
        elif self.stage is not None:
            self.buf = self.stage.to_host(arr, wide)
        else:
            self.buf = np.ascontiguousarray(arr, dtype=wide or arr.dtype)

    def write_back(self) -> None:
        if self.buf is self.arr:
            return
        if self.stage is not None:
            self.stage.to_device(self.buf, self.arr)
        else:
            self.arr[...] = self.buf


class Work:
    """A started collective: ``wait()`` blocks (with the timeout) and finishes it."""

    def __init__(self, requests, what: str, finish=None):
        self._requests = list(requests)
        self._what = what
        self._finish = finish
        self._done = False

    def is_completed(self) -> bool:
        if self._done:
            return True
        MPI = _mpi()
        if MPI.Request.Testall(self._requests):
            self._complete()
        return self._done

    def wait(self, timeout=None) -> bool:
        if not self._done:
            wait_requests(self._requests, self._what, timeout)
            self._complete()
        return True

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self._finish()


def _run(what: str, start, blocking, finish, async_op: bool):
    """``async_op``: start the non-blocking call and return its Work. Otherwise the
    blocking MPI call, which for small messages is several times faster than a
    non-blocking one waited for, under the timeout watchdog."""
    if async_op:
        return Work([start()], what, finish)
    run_blocking(blocking, what)
    if finish is not None:
        finish()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``tensor`` over all ranks, in place, with ``op``."""
    g = _get()
    arr = _array(tensor, "tensor")
    _check_op(op, arr.dtype)
    if _gpu.is_cupy(arr) and _gpu.mode() == "nccl":
        if getattr(g, "nccl", None) is None:
            g.nccl = _gpu.NcclAllReduce(g.comm)
        g.nccl(arr, op)  # enqueued on the current stream, ordered with later kernels
        return Work([], "all_reduce") if async_op else None
    b = _Buffer(arr)
    MPI, mop = _mpi(), _mpi_op(op)

    def finish():
        if op == ReduceOp.AVG:
            b.buf /= g.size
        b.write_back()

    if not async_op and b.buf is arr and op != ReduceOp.AVG:
        # the common case without the closures (a small all-reduce is microseconds)
        run_blocking(lambda: g.comm.Allreduce(MPI.IN_PLACE, arr, mop), "all_reduce")
        return None
    return _run("all_reduce", lambda: g.comm.Iallreduce(MPI.IN_PLACE, b.buf, mop),
                lambda: g.comm.Allreduce(MPI.IN_PLACE, b.buf, mop), finish, async_op)


def broadcast(tensor, src: int = 0, group=None, async_op: bool = False):
    """Copy rank ``src``'s ``tensor`` into every rank's ``tensor``, in place."""
    g = _get()
    _check_rank(src, g.size, "src")
    arr = _array(tensor, "tensor")
    b = _Buffer(arr)
    return _run("broadcast", lambda: g.comm.Ibcast(b.buf, root=src),
                lambda: g.comm.Bcast(b.buf, root=src), b.write_back, async_op)


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """Fill ``tensor_list[r]`` with rank r's ``tensor`` (same shape and dtype on all)."""
    g = _get()
    arr = _array(tensor, "tensor")
    outs = _check_list(tensor_list, g.size, arr, "tensor_list")
    src = _Buffer(arr)
    gathered = np.empty((g.size,) + tuple(arr.shape), src.buf.dtype)

    def finish():
        for out, part in zip(outs, gathered, strict=True):
            _copy_into(out, part)

    return _run("all_gather", lambda: g.comm.Iallgather(src.buf, gathered),
                lambda: g.comm.Allgather(src.buf, gathered), finish, async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``input_list[r]`` over all ranks with ``op`` and leave the result in rank
    r's ``output``."""
    g = _get()
    out = _array(output, "output")
    _check_op(op, out.dtype)
    ins = _check_list(input_list, g.size, out, "input_list")
    stacked = np.ascontiguousarray(np.stack([_host(a) for a in ins]),
                                   dtype=_WIDEN.get(np.dtype(out.dtype), out.dtype))
    result = np.empty(stacked.shape[1:], stacked.dtype)
    mop = _mpi_op(op)

    def finish():
        if op == ReduceOp.AVG:
            result[...] /= g.size
        _copy_into(out, result)

    return _run("reduce_scatter", lambda: g.comm.Ireduce_scatter_block(stacked, result, mop),
                lambda: g.comm.Reduce_scatter_block(stacked, result, mop), finish, async_op)


def barrier(group=None, async_op: bool = False):
    """Wait until every rank reaches the barrier (bounded by the timeout)."""
    g = _get()
    return _run("barrier", g.comm.Ibarrier, g.comm.Barrier, None, async_op)


def all_gather_object(object_list: list, obj, group=None) -> None:
    """Fill ``object_list`` (len world_size) with every rank's picklable ``obj``."""
    from ._group import _allgather_object

    g = _get()
    if not isinstance(object_list, list) or len(object_list) != g.size:
        raise ValueError(f"object_list: expected a list of length {g.size}, got "
                         f"{object_list!r}")
    object_list[:] = _allgather_object(obj, "all_gather_object")


def broadcast_object_list(object_list: list, src: int = 0, group=None) -> None:
    """Replace ``object_list``'s items, on every rank, with rank ``src``'s."""
    from ._group import _allgather_object

    g = _get()
    _check_rank(src, g.size, "src")
    if not isinstance(object_list, list):
        raise TypeError(f"object_list: expected a list, got {type(object_list).__name__}")
    # an all-gather moves every rank's list; the lists this is used for are small
    object_list[:] = _allgather_object(list(object_list), "broadcast_object_list")[src]


def _check_rank(r, size, name):
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= r < size:
        raise ValueError(f"{name}: expected a rank in [0, {size}), got {r!r}")


def _check_list(items, size, like, name):
    if not isinstance(items, (list, tuple)) or len(items) != size:
        raise ValueError(f"{name}: expected a list of world_size={size} tensors, got "
                         f"{type(items).__name__} of length "
                         f"{len(items) if hasattr(items, '__len__') else '?'}")
    arrays = [_array(t, f"{name}[{i}]") for i, t in enumerate(items)]
    for i, a in enumerate(arrays):
        if tuple(a.shape) != tuple(like.shape) or a.dtype != like.dtype:
            raise ValueError(f"{name}[{i}]: expected shape {tuple(like.shape)} and dtype "
                             f"{like.dtype}, got {tuple(a.shape)} {a.dtype}")
    return arrays


def _host(a):
    return a.get() if _gpu.is_cupy(a) else a


def _copy_into(out, values) -> None:
    if _gpu.is_cupy(out):
        out.set(np.ascontiguousarray(values, dtype=out.dtype))
    else:
        out[...] = values
