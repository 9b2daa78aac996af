"""convnet: hand-written CPU/CUDA deep-learning kernels with Numba fallbacks.

``convnet.kernels`` holds the array-level kernels (NumPy in, NumPy out; CuPy on the GPU).
"""

from __future__ import annotations

import os

from . import kernels
from ._threads import get_num_threads, set_num_threads
from .kernels import backends

__version__ = "0.1.0"

__all__ = ["kernels", "backends", "get_num_threads", "set_num_threads", "__version__"]

if "CONVNET_NUM_THREADS" in os.environ:
    set_num_threads(int(os.environ["CONVNET_NUM_THREADS"]))
