"""Fixtures shared by the kernel tests."""

import pytest

import convnet as cn


@pytest.fixture
def bf16_path(request):
    """Forces the native bfloat16 GEMM path named by the (indirect) parameter for one test:
    ``@pytest.mark.parametrize("bf16_path", bf16_gemm_paths(), indirect=True)``."""
    native = cn.kernels._registry.get("native")
    if native is None or not hasattr(native, "set_bf16_gemm_path"):
        pytest.skip("native backend without the 16-bit GEMM")
    before = native.bf16_gemm_path()
    native.set_bf16_gemm_path(request.param)
    yield request.param
    native.set_bf16_gemm_path(before)
