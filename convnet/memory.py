"""The framework's own count of live array bytes, per device, with ``torch.cuda``'s names.

Each array that becomes a tensor's storage, a value saved for backward or a gradient
flowing through the backward pass is counted once per underlying buffer (a view counts
its base) from the moment the framework sees it until the buffer is freed (a weak
reference's callback takes it off). Work buffers inside a kernel are not counted. The
cost on the hot path is one dictionary lookup for a buffer already counted.

    convnet.memory.reset_peak_memory_stats()
    loss = model(x).sum(); loss.backward()
    convnet.memory.max_memory_allocated()   # bytes at the peak of that step
"""

from __future__ import annotations

import weakref

import numpy as np

__all__ = ["max_memory_allocated", "memory_allocated", "reset_peak_memory_stats",
           "reset_max_memory_allocated", "memory_stats"]

_stats = {"cpu": [0, 0], "cuda": [0, 0]}  # device -> [allocated, peak]
_live: dict[int, _Ref] = {}


class _Ref(weakref.ref):
    __slots__ = ("key", "nbytes", "dev")


def _release(ref: _Ref) -> None:
    if _live.get(ref.key) is ref:
        del _live[ref.key]
        _stats[ref.dev][0] -= ref.nbytes


def track(arr) -> None:
    """Count ``arr``'s buffer if it is not counted yet (called where arrays enter)."""
    root = arr
    base = arr.base
    while base is not None and hasattr(base, "nbytes") and hasattr(base, "base"):
        root = base
        base = root.base
    key = id(root)
    if key in _live:
        return
    try:
        ref = _Ref(root, _release)
    except TypeError:  # a type without weak references: not counted
        return
    ref.key = key
    ref.nbytes = n = int(root.nbytes)
    ref.dev = dev = "cpu" if isinstance(root, np.ndarray) else "cuda"
    _live[key] = ref
    st = _stats[dev]
    st[0] += n
    if st[0] > st[1]:
        st[1] = st[0]


def _device(device) -> str:
    kind = "cpu" if device is None else str(getattr(device, "type", device)).partition(":")[0]
    if kind not in _stats:
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    return kind


def memory_allocated(device=None) -> int:
    """Bytes of live arrays the framework counts on ``device`` ('cpu' by default)."""
    return _stats[_device(device)][0]


def max_memory_allocated(device=None) -> int:
    """The most bytes counted at once on ``device`` since the last reset."""
    return _stats[_device(device)][1]


def reset_peak_memory_stats(device=None) -> None:
    """Start a new peak from the bytes live now."""
    st = _stats[_device(device)]
    st[1] = st[0]


reset_max_memory_allocated = reset_peak_memory_stats


def memory_stats(device=None) -> dict:
    st = _stats[_device(device)]
    return {"allocated_bytes.all.current": st[0], "allocated_bytes.all.peak": st[1]}
