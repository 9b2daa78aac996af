"""TF32 switches for float32 work on the GPU, with PyTorch's names and semantics.

* ``convnet.backends.cuda.matmul.allow_tf32`` (default False, as in PyTorch): float32 GEMMs
  on CUDA (``kernels.gemm`` and everything built on it: linear layers, matmul, the RNN
  GEMMs) may run on TF32 tensor cores: inputs rounded to 10 mantissa bits, float32
  accumulation, about 1e-3 relative error instead of 1e-6.
* ``convnet.set_float32_matmul_precision("highest" | "high" | "medium")`` and
  ``get_float32_matmul_precision()``: "highest" is float32 throughout (allow_tf32 False);
  "high" and "medium" allow TF32 (PyTorch may use bfloat16 internally for "medium"; convnet
  uses TF32 for both). Setting ``allow_tf32`` moves the precision between "highest" and
  "high", as PyTorch does. An unknown name warns and changes nothing (PyTorch's behaviour);
  a value that is not a string is a TypeError.
* ``convnet.backends.cudnn.allow_tf32`` governs the convolutions (conv2d forward and both
  gradients). **Difference from PyTorch:** PyTorch defaults it to True; convnet defaults it
  to False, so float32 convolutions stay float32 unless asked (the issue that added TF32
  asks for "an option, off by default"; set it to True for PyTorch's default).

The flags are process-wide and only affect float32 CuPy arrays on devices with compute
capability 8.0 or later; float64 and CPU arrays never use TF32.
"""

from __future__ import annotations

import warnings

_PRECISIONS = ("highest", "high", "medium")
_state = {"matmul": "highest", "cudnn_tf32": False}


def set_float32_matmul_precision(precision: str) -> None:
    """PyTorch's ``torch.set_float32_matmul_precision`` (see the module docstring)."""
    if not isinstance(precision, str):
        raise TypeError(f"set_float32_matmul_precision: precision must be a str, got "
                        f"{type(precision).__name__}")
    if precision not in _PRECISIONS:
        warnings.warn(f"{precision} is not one of 'highest', 'high', or 'medium'; the "
                      f"set_float32_matmul_precision call has no effect.", UserWarning,
                      stacklevel=2)
        return
    _state["matmul"] = precision


def get_float32_matmul_precision() -> str:
    """'highest', 'high' or 'medium': the current float32 matmul precision."""
    return _state["matmul"]


def _as_bool(name, value):
    if not isinstance(value, (bool, int)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


class _MatmulFlags:
    """``convnet.backends.cuda.matmul``."""

    @property
    def allow_tf32(self) -> bool:
        return _state["matmul"] != "highest"

    @allow_tf32.setter
    def allow_tf32(self, value) -> None:
        _state["matmul"] = "high" if _as_bool("allow_tf32", value) else "highest"

    def __repr__(self):
        return f"convnet.backends.cuda.matmul(allow_tf32={self.allow_tf32})"


class _CudaFlags:
    """``convnet.backends.cuda``."""

    matmul = _MatmulFlags()

    def __repr__(self):
        return "convnet.backends.cuda"


class _CudnnFlags:
    """``convnet.backends.cudnn`` (convnet's own convolution kernels stand in for cuDNN)."""

    @property
    def allow_tf32(self) -> bool:
        return _state["cudnn_tf32"]

    @allow_tf32.setter
    def allow_tf32(self, value) -> None:
        _state["cudnn_tf32"] = _as_bool("allow_tf32", value)

    def __repr__(self):
        return f"convnet.backends.cudnn(allow_tf32={self.allow_tf32})"


cuda = _CudaFlags()
cudnn = _CudnnFlags()


def matmul_tf32() -> bool:
    return _state["matmul"] != "highest"


def conv_tf32() -> bool:
    return _state["cudnn_tf32"]
