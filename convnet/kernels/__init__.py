"""Array-level kernels: NumPy in, NumPy out (CuPy in, CuPy out on the ``cuda`` backend).

Every function takes ``backend=None|"native"|"numba"|"cuda"``; ``None`` picks the
compiled C++ kernels when they are built, else the Numba ones, and ``cuda`` for CuPy
arrays. Layout is NCHW; float32 and float64 are supported (all float inputs of a call must
share the dtype), and bfloat16 and float16 with float32 accumulation: batch-norm statistics
stay float32, GEMM may write a float32 C. The native build runs 16-bit GEMM and
convolutions on its own kernels (bfloat16 on vdpbf16ps where the CPU has AVX512-BF16, as
``convnet info`` says; float16 widened by F16C); every other 16-bit call computes in
float32 on the 16-bit storage and rounds its results to nearest even (see ``spec.py``).
Non-contiguous inputs are copied to C order first. Bad arguments raise ValueError/TypeError
naming the argument before any kernel runs.

Padding for convolutions: an int, ``(ph, pw)``, ``((top, bottom), (left, right))``,
``"valid"`` or ``"same"`` (TensorFlow's SAME: output = ceil(input / stride)). Pooling
follows PyTorch: ``stride=None`` means the kernel size, padding is at most half the
kernel, max pooling pads with -inf and returns flat ``h * W + w`` indices per plane,
average pooling counts the zero padding in the divisor unless
``count_include_pad=False`` (PyTorch's default is True).

The layer is built from ``spec.py`` (the manifest of every backend-level kernel: its
arguments and their roles), ``_boundary.py`` (the checks every call passes, once, before
any backend, and the dispatch to the backend) and one module per op: ``blas`` (GEMM), ``conv``
(with the transposed convolution), ``fused`` (bias and activation epilogues), ``pool``,
``norm``, ``activation``, ``rnn``, ``upsample``. Backends: ``convnet._C`` (native),
``_numba``, ``_cuda`` (on CuPy arrays); ``reference`` is the float64 NumPy oracle of the
tests.
"""

from __future__ import annotations

from . import (
               activation,
               algorithms,
               arrays,
               blas,
               conv,
               fused,
               norm,
               pool,
               precision,
               rnn,
               spec,
               upsample,
)
from ._registry import backends, use_backend
from .activation import *  # noqa: F403
from .algorithms import *  # noqa: F403
from .arrays import *  # noqa: F403
from .blas import *  # noqa: F403
from .conv import *  # noqa: F403
from .conv import _conv_geometry  # noqa: F401  (used by the GPU tests and benchmark)
from .fused import *  # noqa: F403
from .norm import *  # noqa: F403
from .pool import *  # noqa: F403
from .pool import _pool_geometry  # noqa: F401
from .rnn import *  # noqa: F403
from .upsample import *  # noqa: F403

_OPS = {"activation": activation, "conv": conv, "blas": blas, "fused": fused, "norm": norm,
        "pool": pool, "rnn": rnn, "upsample": upsample}
# Every kernel of the manifest belongs to one of these modules, which re-export their API.
assert {k.op for k in spec.KERNELS} == set(_OPS), "an op of the manifest has no module"
__all__ = (["backends", "use_backend", "spec", *arrays.__all__, *algorithms.__all__]
           + [n for m in _OPS.values() for n in m.__all__])

# convnet.backends.cuda.matmul.allow_tf32 and convnet.backends.cudnn.allow_tf32 (PyTorch's
# spelling) live on the backends() function.
backends.cuda = precision.cuda
backends.cudnn = precision.cudnn
