"""convnet: hand-written CPU/CUDA deep-learning kernels with Numba fallbacks, and a
PyTorch-style framework on top.

``convnet.kernels`` holds the array-level kernels (NumPy in, NumPy out; CuPy on the GPU);
``convnet.Tensor`` with autograd and ``convnet.functional`` build on them.
"""

from __future__ import annotations

import os

from . import functional, kernels, nn, optim  # importing functional attaches Tensor's operators
from ._threads import get_num_threads, set_num_threads
from .autograd import enable_grad, is_grad_enabled, no_grad
from .creation import arange, full, ones, ones_like, rand, randn, zeros, zeros_like
from .functional import cat, stack, where
from .kernels import backends
from .random import manual_seed
from .serialization import load, save
from .tensor import Tensor, tensor

__version__ = "0.1.0"

__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "rand", "randn", "arange", "zeros_like",
    "ones_like", "cat", "stack", "where", "no_grad", "enable_grad", "is_grad_enabled",
    "manual_seed", "save", "load", "functional", "nn", "optim", "kernels", "backends",
    "get_num_threads", "set_num_threads", "__version__",
]

if "CONVNET_NUM_THREADS" in os.environ:
    set_num_threads(int(os.environ["CONVNET_NUM_THREADS"]))
