"""convnet: hand-written CPU/CUDA deep-learning kernels with Numba fallbacks, and a
PyTorch-style framework on top.

``convnet.kernels`` holds the array-level kernels (NumPy in, NumPy out; CuPy on the GPU);
``convnet.Tensor`` with autograd and ``convnet.functional`` build on them. The top level
has PyTorch's names (functions, dtypes, ``device``, ``cuda``), so that ``import convnet as
torch`` runs a PyTorch program.
"""

from __future__ import annotations

import os

from . import (
    _allocator,  # noqa: F401 - first: importing it tunes malloc before any large array
    amp,
    cuda,
    data,
    functional,
    kernels,
    memory,
    models,
    nn,
    optim,
    utils,
)
from ._dtypes import (
    bfloat16,
    device,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from ._dtypes import (
    bool_ as bool,  # noqa: A001 - PyTorch's names shadow the builtins inside the package
)
from ._namespace import (
    abs,
    allclose,
    argmax,
    argmin,
    argsort,
    bmm,
    chunk,
    clamp,
    clip,
    cumsum,
    einsum,
    equal,
    exp,
    flatten,
    gather,
    index_select,
    is_floating_point,
    is_tensor,
    log,
    log_softmax,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mm,
    numel,
    permute,
    relu,
    reshape,
    sigmoid,
    softmax,
    sort,
    split,
    sqrt,
    squeeze,
    std,
    sum,
    tanh,
    topk,
    transpose,
    unsqueeze,
    var,
)
from ._threads import get_num_threads, set_num_threads
from .amp import autocast, get_autocast_dtype, is_autocast_enabled
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    zeros,
    zeros_like,
)
from .functional import cat, stack, where
from .kernels import backends
from .kernels.precision import get_float32_matmul_precision, set_float32_matmul_precision
from .random import Generator, manual_seed
from .serialization import load, save
from .tensor import Tensor, tensor

float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
short = int16


def _typed_constructor(name: str, dtype):
    def make(*data):
        import builtins
        import numbers

        if data and builtins.all(isinstance(d, numbers.Integral) for d in data):
            return zeros(*data, dtype=dtype)
        if len(data) != 1:
            raise TypeError(f"{name}: expected one sequence or sizes, got {len(data)} values")
        return tensor(data[0], dtype=dtype)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = (f"Legacy ``torch.{name}(data)``: a tensor of that dtype from a sequence "
                    f"or array; ``torch.{name}(n, m)`` with sizes gives zeros of that shape.")
    return make


FloatTensor = _typed_constructor("FloatTensor", float32)
DoubleTensor = _typed_constructor("DoubleTensor", float64)
LongTensor = _typed_constructor("LongTensor", int64)
IntTensor = _typed_constructor("IntTensor", int32)
BoolTensor = _typed_constructor("BoolTensor", bool)

__version__ = "0.1.0"

__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "rand", "randn", "arange", "zeros_like",
    "ones_like", "cat", "stack", "where", "no_grad", "enable_grad", "is_grad_enabled",
    "set_grad_enabled", "manual_seed", "save", "load", "functional", "nn", "optim",
    "kernels", "backends", "get_float32_matmul_precision",
    "set_float32_matmul_precision", "get_num_threads", "set_num_threads", "__version__", "cuda",
    "data", "models", "utils", "device", "float32", "float64", "float16", "bfloat16",
    "int64", "int32", "int16", "int8", "uint8", "bool", "float", "double", "half", "long",
    "int", "short", "empty", "empty_like", "eye", "linspace", "randint", "randperm",
    "full_like", "randn_like", "rand_like", "from_numpy", "as_tensor", "from_dlpack", "abs",
    "allclose", "argmax", "argmin", "argsort", "bmm", "chunk", "clamp", "clip", "cumsum",
    "einsum", "equal", "exp", "flatten", "gather", "index_select", "is_floating_point",
    "is_tensor", "log", "log_softmax", "masked_fill", "matmul", "max", "maximum", "mean",
    "min", "minimum", "mm", "numel", "permute", "relu", "reshape", "sigmoid", "softmax",
    "sort", "split", "sqrt", "squeeze", "std", "sum", "tanh", "topk", "transpose",
    "unsqueeze", "var", "Generator", "FloatTensor", "DoubleTensor", "LongTensor", "IntTensor",
    "BoolTensor", "amp", "autocast", "memory", "get_autocast_dtype", "is_autocast_enabled",
]

if "CONVNET_NUM_THREADS" in os.environ:
    import builtins

    set_num_threads(builtins.int(os.environ["CONVNET_NUM_THREADS"]))
