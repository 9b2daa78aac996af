"""Algorithm choice of the native backend's 3x3 stride-1 convolutions.

``"auto"`` (the default) picks Winograd F(4x4, 3x3) or the implicit GEMM per shape by a
measured rule (``csrc/cpu/winograd.cpp``); ``"winograd"`` forces Winograd wherever it
applies (3x3 filters, stride 1, dilation 1: the forward pass and the data gradient);
``"gemm"`` never uses it. The environment variable ``CONVNET_CONV_ALGO`` sets the initial
choice. Other backends and other shapes are not affected.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

from . import _registry

__all__ = ["set_conv_algorithm", "get_conv_algorithm", "conv_algorithm"]

CONV_ALGORITHMS = ("auto", "winograd", "gemm")

if os.environ.get("CONVNET_CONV_ALGO", "auto") not in CONV_ALGORITHMS:
    # The native module falls back to "auto" for a value it does not know; say so.
    warnings.warn(f"CONVNET_CONV_ALGO={os.environ['CONVNET_CONV_ALGO']!r} is not one of "
                  f"{CONV_ALGORITHMS}; using 'auto'", RuntimeWarning, stacklevel=2)


def set_conv_algorithm(algorithm: str) -> None:
    """Sets the algorithm of 3x3 stride-1 convolutions on the native backend."""
    if algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {CONV_ALGORITHMS}, got {algorithm!r}")
    native = _registry.get("native")
    if native is not None:
        native.set_conv_algorithm(algorithm)


def get_conv_algorithm() -> str:
    """The current setting ("auto" where the native backend is not built)."""
    native = _registry.get("native")
    return native.get_conv_algorithm() if native is not None else "auto"


@contextmanager
def conv_algorithm(algorithm: str):
    """``with conv_algorithm("winograd"): ...`` sets the algorithm for the block only."""
    previous = get_conv_algorithm()
    set_conv_algorithm(algorithm)
    try:
        yield
    finally:
        set_conv_algorithm(previous)
