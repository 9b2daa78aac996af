"""Thread count shared by the native (OpenMP) and Numba kernels."""

from __future__ import annotations

import os

from .kernels import _registry
from .kernels._checks import positive_int


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads the CPU kernels use (default: the cores this process may run on)."""
    native = _registry.get("native")
    if native is not None:
        return native.get_num_threads()
    return _numba_threads() or _cores()


def _numba_threads() -> int | None:
    import sys

    numba = sys.modules.get("numba")
    return numba.get_num_threads() if numba is not None else None


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the native and Numba kernels (capped at Numba's pool size), in
    every thread that runs them: the native count is process-wide, and Numba's, which
    Numba keeps per thread, is applied to each thread before its next Numba kernel.

    ``n`` is the most a native kernel takes: while other processes keep cores busy it takes
    only the free ones (measured every 0.1 s; a kernel that waits for a thread sharing its
    core with another process runs slower than on the free cores alone). Set the
    environment variable ``CONVNET_ADAPTIVE_THREADS=0`` to always take ``n``."""
    n = positive_int("n", n)
    native = _registry.get("native")
    if native is not None:
        native.set_num_threads(n)
    if _registry.get("numba") is not None:
        import numba

        _registry.numba_threads = min(n, numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(_registry.numba_threads)
