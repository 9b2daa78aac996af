"""GPU (CuPy) buffers in the collectives. None of this has run on a GPU yet: it awaits
a machine with several GPUs; the staging logic is unit-tested with NumPy stand-ins.

Three paths, chosen by ``CONVNET_DIST_GPU`` (default ``auto``):

- ``cuda-aware``: the MPI library reads device memory itself (Open MPI / MPICH built with
  CUDA); mpi4py takes CuPy arrays through ``__cuda_array_interface__``. ``auto`` picks it
  when ``MPIX_Query_cuda_support`` says yes.
- ``staged``: device -> pinned host buffer -> MPI -> pinned host buffer -> device. The
  pinned buffers are kept and reused per size so a training step does not allocate.
- ``nccl``: ``cupy.cuda.nccl`` for all-reduce (the NCCL id travels over MPI); the other
  collectives stay on MPI, staged.
"""

from __future__ import annotations

import os

import numpy as np

from ..kernels._checks import is_cupy

_MODES = ("auto", "cuda-aware", "staged", "nccl")


def mode() -> str:
    value = os.environ.get("CONVNET_DIST_GPU", "auto")
    if value not in _MODES:
        raise ValueError(f"CONVNET_DIST_GPU: expected one of {_MODES}, got {value!r}")
    if value == "auto":
        return "cuda-aware" if _mpi_is_cuda_aware() else "staged"
    return value


def _mpi_is_cuda_aware() -> bool:
    try:
        from mpi4py import MPI

        return bool(MPI.Query_cuda_support())
    except (ImportError, AttributeError, NotImplementedError):
        return False


class _CupyDevice:
    """The device operations the stager needs, on CuPy."""

    def __init__(self):
        import cupy

        self.cupy = cupy

    def pinned(self, nbytes: int) -> np.ndarray:
        mem = self.cupy.cuda.alloc_pinned_memory(nbytes)
        return np.frombuffer(mem, np.uint8, nbytes)

    def to_host(self, src, dst: np.ndarray) -> None:
        src.get(out=dst)  # synchronous: MPI reads dst right after

    def to_device(self, src: np.ndarray, dst) -> None:
        dst.set(src)

    def synchronize(self) -> None:
        self.cupy.cuda.get_current_stream().synchronize()


class PinnedStager:
    """Copies a device array into a reused page-locked host buffer and back.

    ``device`` supplies ``pinned(nbytes)``, ``to_host(src, dst)``, ``to_device(src, dst)``
    and ``synchronize()``; the default is CuPy (tests pass a NumPy stand-in).
    """

    def __init__(self, device=None):
        self.device = device
        self._pool: dict[int, np.ndarray] = {}

    def _dev(self):
        if self.device is None:
            self.device = _CupyDevice()
        return self.device

    def _buffer(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        raw = self._pool.get(nbytes)
        if raw is None:
            raw = self._pool[nbytes] = self._dev().pinned(nbytes)
        return raw[:nbytes].view(dtype).reshape(shape)

    def to_host(self, arr, wide=None) -> np.ndarray:
        dev = self._dev()
        dev.synchronize()  # kernels writing arr run on the stream; MPI is not on it
        host = self._buffer(arr.shape, arr.dtype)
        dev.to_host(arr if arr.flags.c_contiguous else arr.copy(), host)
        return host if wide is None else host.astype(wide)

    def to_device(self, host: np.ndarray, arr) -> None:
        dev = self._dev()
        staged = self._buffer(arr.shape, arr.dtype)
        if host is not staged:
            staged[...] = host  # rounds a widened buffer back to arr's dtype
        if arr.flags.c_contiguous:
            dev.to_device(staged, arr)
        else:
            arr[...] = self._dev().cupy.asarray(staged)


_stager: PinnedStager | None = None


def stager_for(arr):
    """None for host arrays and for device arrays MPI reads directly; else the stager."""
    global _stager
    if not is_cupy(arr):
        return None
    if mode() == "cuda-aware" and arr.flags.c_contiguous:
        import cupy

        cupy.cuda.get_current_stream().synchronize()
        return None
    if _stager is None:
        _stager = PinnedStager()
    return _stager


class NcclAllReduce:
    """All-reduce of CuPy arrays with NCCL (``CONVNET_DIST_GPU=nccl``); the unique id is
    broadcast from rank 0 over MPI."""

    _NCCL_OPS = {"sum": "NCCL_SUM", "avg": "NCCL_SUM", "product": "NCCL_PROD",
                 "min": "NCCL_MIN", "max": "NCCL_MAX"}
    _NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32",
                   "float64": "NCCL_FLOAT64", "int32": "NCCL_INT32", "int64": "NCCL_INT64"}

    def __init__(self, comm):
        from cupy.cuda import nccl

        self.nccl = nccl
        uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
        uid = comm.bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
        self.size = comm.Get_size()

    def __call__(self, arr, op: str) -> None:
        import cupy

        dtype = self._NCCL_TYPES.get(str(arr.dtype))
        if dtype is None or not arr.flags.c_contiguous:
            raise TypeError(f"nccl all_reduce: needs a contiguous array of "
                            f"{sorted(self._NCCL_TYPES)}, got {arr.dtype}")
        stream = cupy.cuda.get_current_stream()
        self.comm.allReduce(arr.data.ptr, arr.data.ptr, arr.size, getattr(self.nccl, dtype),
                            getattr(self.nccl, self._NCCL_OPS[op]), stream.ptr)
        if op == "avg":
            arr /= self.size
