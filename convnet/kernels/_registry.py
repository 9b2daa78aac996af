"""Which kernel backends exist on this machine, and the one place that picks between them.

A backend is a module exposing the backend-level functions (``gemm``, ``conv2d_forward``,
... with preallocated outputs, see ``convnet.kernels._numba``). ``native`` is the compiled
extension ``convnet._C``; ``numba`` the JIT fallback; ``cuda`` the CUDA extension on CuPy
arrays. Import failures are remembered and reported by :func:`backends`, never raised at
``import convnet``.
"""

from __future__ import annotations

import importlib
import os
from contextvars import ContextVar
from types import ModuleType

BACKEND_NAMES = ("native", "numba", "cuda")

_modules: dict[str, ModuleType | None] = {}
_errors: dict[str, str] = {}


def _load_native() -> ModuleType:
    if os.environ.get("CONVNET_DISABLE_NATIVE", "0") == "1":
        raise ImportError("disabled by CONVNET_DISABLE_NATIVE=1")
    try:
        return importlib.import_module("convnet._C")
    except ImportError as exc:
        raise ImportError(
            f"the compiled extension convnet._C is not importable ({exc}); "
            "reinstall with a C++17 compiler (pip install -e .) to build it"
        ) from exc


def _load_numba() -> ModuleType:
    return importlib.import_module("convnet.kernels._numba")


def _cuda_build_note() -> str:
    """What the CUDA extension says about itself, for the reasons CUDA is unavailable."""
    try:
        ext = importlib.import_module("convnet._cuda")
    except ImportError as exc:
        return (f"the CUDA extension convnet._cuda was not built or does not load ({exc}); "
                "reinstall with nvcc on PATH or CUDA_HOME set")
    rt = ext.runtime_version()
    note = (f"convnet._cuda is built (for {ext.compiled_archs()}, CUDA runtime "
            f"{rt // 1000}.{rt % 1000 // 10})")
    try:
        count = ext.device_count()
    except RuntimeError as exc:
        return f"{note}; {exc}"
    return f"{note}; {count} CUDA device(s)" if count else f"{note}; no CUDA device found"


def _load_cuda() -> ModuleType:
    if os.environ.get("CONVNET_DISABLE_CUDA", "0") == "1":
        raise ImportError("disabled by CONVNET_DISABLE_CUDA=1")
    try:
        import cupy  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"CuPy is not installed or does not import ({exc}; pip install "
                          f"convnet[cuda]); {_cuda_build_note()}") from exc
    try:
        module = importlib.import_module("convnet.kernels._cuda")
    except ImportError as exc:
        raise ImportError(_cuda_build_note()) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver raises a CUDARuntimeError
        raise ImportError(f"no usable CUDA driver ({exc}); {_cuda_build_note()}") from exc
    if count < 1:
        raise ImportError("no CUDA device found")
    return module


_LOADERS = {"native": _load_native, "numba": _load_numba, "cuda": _load_cuda}


def get(name: str) -> ModuleType | None:
    """The backend module, or None if it cannot be loaded (see :func:`backends`)."""
    if name not in _modules:
        try:
            module = _LOADERS[name]()
            from .spec import check_backend

            check_backend(name, module)
            _modules[name] = module
        except Exception as exc:  # any failure means "unavailable", with the reason kept
            _modules[name] = None
            _errors[name] = f"{type(exc).__name__}: {exc}"
    return _modules[name]


def require(name: str) -> ModuleType:
    if name not in _LOADERS:
        raise ValueError(f"backend: unknown backend {name!r}; expected one of {BACKEND_NAMES}")
    module = get(name)
    if module is None:
        raise RuntimeError(f"backend {name!r} is not available: {_errors[name]}")
    return module


# The CPU backend chosen by use_backend: a context variable, so each thread (and each
# asyncio task) has its own; a new thread starts with the default.
_preferred_cpu: ContextVar[str | None] = ContextVar("convnet_cpu_backend", default=None)


def default_cpu() -> str:
    name = _preferred_cpu.get()
    if name is not None:
        return name
    return "native" if get("native") is not None else "numba"


class use_backend:
    """Context manager: kernels called with ``backend=None`` on NumPy arrays use ``name``
    ("native" or "numba") inside the block, e.g. to run a whole model on Numba. The choice
    belongs to the calling thread: other threads keep theirs."""

    def __init__(self, name: str):
        if name not in ("native", "numba"):
            raise ValueError(f"name: expected 'native' or 'numba', got {name!r}")
        require(name)
        self.name = name
        self._tokens: list = []

    def __enter__(self):
        self._tokens.append(_preferred_cpu.set(self.name))
        return self

    def __exit__(self, *exc):
        _preferred_cpu.reset(self._tokens.pop())
        return False


# Numba keeps its thread count per calling thread: the count set by convnet.set_num_threads
# is applied to a thread when it first runs a Numba kernel after the change.
numba_threads: int | None = None


def sync_numba_threads() -> None:
    if numba_threads is not None:
        import numba

        if numba.get_num_threads() != numba_threads:
            numba.set_num_threads(numba_threads)


def backends() -> dict[str, dict[str, object]]:
    """``{name: {"available": bool, "detail": str}}`` for native, numba and cuda."""
    out: dict[str, dict[str, object]] = {}
    for name in BACKEND_NAMES:
        module = get(name)
        if module is None:
            out[name] = {"available": False, "detail": _errors[name]}
            continue
        if name == "native":
            detail = (
                f"convnet._C, {module.simd_level()}, "
                f"OpenMP {'on' if module.has_openmp() else 'off'}, "
                f"{module.get_num_threads()} threads"
            )
        elif name == "numba":
            import numba

            detail = f"numba {numba.__version__}, {numba.get_num_threads()} threads"
        else:
            detail = getattr(module, "describe", lambda: "convnet._cuda")()
        out[name] = {"available": True, "detail": detail}
    return out
