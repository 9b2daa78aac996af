"""``convnet.cuda``: whether CUDA tensors can be made (CuPy and a device), as torch.cuda."""

from __future__ import annotations

import functools


@functools.cache
def device_count() -> int:
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no CuPy, no driver or no device: no CUDA tensors
        return 0


def is_available() -> bool:
    return device_count() > 0


def synchronize(device=None) -> None:
    if is_available():
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def manual_seed(seed: int) -> None:
    if is_available():
        import cupy

        cupy.random.seed(int(seed))


manual_seed_all = manual_seed
