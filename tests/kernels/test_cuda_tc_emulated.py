"""The tensor-core kernels on the CPU emulator (tests/kernels/cuda_emu): gemm_tc.cu and
conv2d_tc.cu compiled with g++, their mma.sync / ldmatrix / cp.async wrappers served by
the emulator with the PTX ISA's warp fragment layouts (every lane of a warp is a real
thread; a fragment read from the wrong lane or register gives a wrong product), driven
through convnet/kernels/_cuda.py with NumPy arrays (float16, ml_dtypes bfloat16, float32)
standing in for CuPy ones, and checked by the gpu tests' own functions
(tests/kernels/test_cuda_tc.py) against the float64 reference of the rounded inputs.

What this shows: fragment layouts, swizzled shared-memory addressing, the cp.async group
pipeline (copies land only at their wait_group), edge tiles, unaligned operands, split-K,
16-bit rounding, the binding and the dispatch. What it does not: speed, and the exact
rounding of the GPU's tensor cores (the emulator accumulates in float32 in k order; the
bound covers truncating hardware too).
"""

import os
import subprocess

import numpy as np
import pytest

from tests.kernels import emu_build
from tests.kernels import test_cuda_tc as tc
from tests.kernels.test_cuda_emulated import cp, emu  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(900)

# Small tiles (64x64, 4 warps) below 4 tiles on the emulator's 4 SMs, 128x128 (8 warps)
# from there; K = 7, 65 unaligned (register path), 16, 96 and 40 aligned (cp.async), and
# edges in every direction.
SHAPES = [(1, 1, 1), (3, 5, 7), (16, 8, 16), (17, 33, 65), (64, 128, 96), (257, 300, 40)]


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_float16(emu, cp, m, n, k, trans_a, trans_b):  # noqa: F811
    tc.gemm_case(cp, emu, m, n, k, trans_a, trans_b, np.float16, np.float16)


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m,n,k", [SHAPES[3], SHAPES[4]])
def test_gemm_bfloat16(emu, cp, m, n, k, trans_a, trans_b):  # noqa: F811
    bf16 = tc._bf16()
    tc.gemm_case(cp, emu, m, n, k, trans_a, trans_b, bf16, bf16)


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
@pytest.mark.parametrize("m,n,k", [SHAPES[1], SHAPES[4]])
def test_gemm_16bit_into_float32(emu, cp, m, n, k, dt):  # noqa: F811
    dtype = np.dtype(np.float16) if dt == "float16" else tc._bf16()
    tc.gemm_case(cp, emu, m, n, k, False, True, dtype, np.float32)


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m,n,k", [SHAPES[3], SHAPES[4]])
def test_gemm_tf32(emu, cp, monkeypatch, m, n, k, trans_a, trans_b):  # noqa: F811
    tc.test_gemm_tf32_within_the_rounding_bound(cp, emu, monkeypatch, m, n, k, trans_a,
                                                trans_b)


def test_gemm_tf32_only_when_allowed(emu, cp, monkeypatch):  # noqa: F811
    calls = []
    for name in ("gemm", "gemm_tc"):
        fn = getattr(emu._ext, name)
        monkeypatch.setattr(emu._ext, name,
                            lambda *a, _fn=fn, _n=name: (calls.append(_n), _fn(*a))[1])
    tc.test_gemm_tf32_only_when_allowed(cp, emu, monkeypatch)
    assert calls == ["gemm", "gemm_tc"]


def test_gemm_unaligned_views(emu, cp):  # noqa: F811
    """Operands at an odd element offset (base not 16-byte aligned): the register path."""
    rng = np.random.default_rng(4)
    big = rng.standard_normal(40 * 24 + 1).astype(np.float16)
    a = big[1:].reshape(40, 24)  # aligned leading dimension, unaligned base
    b = rng.standard_normal((24, 72)).astype(np.float16)
    c = np.full((40, 72), np.nan, np.float16)
    emu.gemm(a, b, c, 1.0, 0.0, False, False)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    mag = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    tc.assert_within(c, exact, tc.dot_bound(24, mag, exact, "float16"), "unaligned a")


@pytest.mark.parametrize("case", tc.CONV_CASES, ids=tc.CONV_IDS)
def test_conv2d_float16(emu, cp, case):  # noqa: F811
    tc.conv_case(cp, emu, case, np.float16)


@pytest.mark.parametrize("case", tc.CONV_CASES[1::4], ids=tc.CONV_IDS[1::4])
def test_conv2d_bfloat16(emu, cp, case):  # noqa: F811
    tc.conv_case(cp, emu, case, tc._bf16())


@pytest.mark.parametrize("case", tc.CONV_CASES[::3], ids=tc.CONV_IDS[::3])
def test_conv2d_tf32(emu, cp, monkeypatch, case):  # noqa: F811
    tc.test_conv2d_tf32_when_cudnn_allow_tf32(cp, emu, monkeypatch, case)


def test_conv2d_bias_gradient(emu, cp):  # noqa: F811
    tc.test_conv2d_float16_bias_gradient(cp, emu)


@pytest.mark.parametrize("seed", range(3))
def test_conv2d_weight_gradient_split_k(emu, cp, monkeypatch, seed):  # noqa: F811
    """A long NPQ reduction over few filters: split over blocks that add into a float32
    sum in shuffled orders, then rounded once to float16."""
    monkeypatch.setenv("CONVNET_EMU_SEED", str(seed))
    monkeypatch.setenv("CONVNET_EMU_BLOCKS_IN_FLIGHT", "1" if seed % 2 else "4")
    tc.conv_case(cp, emu, ((48, 2, 12, 12), (3, 3, 3), 1, 1, 1), np.float16)


def test_binding_refuses_bad_dtypes_and_short_buffers(emu):  # noqa: F811
    ext = emu._ext
    gemm = (8, 8, 8, 8, 8, 8, 1.0, 0.0, False, False, 0, 0)  # M, N, K, lda, ldb, ldc, ...
    with pytest.raises(TypeError, match="dtype"):
        ext.gemm_tc("float64", "float64", [8, 8, 8], [64, 64, 64], *gemm)
    with pytest.raises(TypeError, match="c: expected dtype float16 or float32"):
        ext.gemm_tc("float16", "bfloat16", [8, 8, 8], [64, 64, 64], *gemm)
    # the element counts are checked against the sizes (csrc/buffer_rules.h), as every
    # CUDA binding's: one element short of a, of c, or a transposed b too narrow
    for counts in ([63, 64, 64], [64, 64, 63]):
        with pytest.raises(ValueError, match="gemm"):
            ext.gemm_tc("float16", "float16", [8, 8, 8], counts, *gemm)
    with pytest.raises(ValueError, match="leading dimensions"):
        ext.gemm_tc("float16", "float16", [8, 8, 8], [64, 64, 64], 8, 8, 8, 8, 4, 8, 1.0,
                    0.0, False, True, 0, 0)
    geom = [1, 1, 3, 3, 1, 1, 1, 3, 3, 1, 1, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="work"):
        ext.conv2d_backward_weight_tc("float16", "float16", [8, 8, 8, 8, 0], [9, 9, 1, 4, 0],
                                      geom, 0, 0)
    with pytest.raises(TypeError, match="dw_out: expected dtype bfloat16 or float32"):
        ext.conv2d_backward_weight_tc("bfloat16", "float16", [8, 8, 8, 8, 8], [9, 9, 1, 4, 1],
                                      geom, 0, 0)
    with pytest.raises(ValueError, match="conv2d_forward"):
        ext.conv2d_forward_tc("float16", [8, 8, 0, 8, 8], [8, 1, 0, 9, 4], geom, 0, 0)


def test_public_api_runs_16bit_on_tensor_cores(emu, monkeypatch):  # noqa: F811
    """The emulated adapter in the place of a CPU backend: NumPy float16 arrays through
    convnet.kernels and the boundary reach its tensor-core kernels."""
    from convnet.kernels import _registry

    calls = []
    for name in ("gemm_tc", "conv2d_forward_tc", "conv2d_backward_data_tc",
                 "conv2d_backward_weight_tc"):
        fn = getattr(emu._ext, name)
        monkeypatch.setattr(emu._ext, name,
                            lambda *a, _fn=fn, _n=name: (calls.append(_n), _fn(*a))[1])
    monkeypatch.setitem(_registry._modules, "numba", emu)
    tc.public_api_case("numba")
    assert calls == ["gemm_tc", "gemm_tc", "conv2d_forward_tc", "conv2d_forward_tc",
                     "conv2d_backward_weight_tc", "conv2d_backward_data_tc"]


# The building blocks against the PTX ISA itself (tests/kernels/cuda_emu/tc_selftest.cu):
# the emulator's ldmatrix/mma fragments, the 16-bit and TF32 roundings, and the swizzled
# tile layouts' bank-conflict freedom.
@pytest.fixture(scope="module")
def tc_selftest():
    reason = emu_build.skip_reason()
    if reason:
        pytest.skip(reason)
    exe, error = emu_build.build_program(os.path.join(emu_build.EMU, "tc_selftest.cu"),
                                         emu_build.build_dir("-tcselftest"))
    if error:
        pytest.fail(error)
    return exe


@pytest.mark.parametrize("mode", ["layout", "convert", "swizzle"])
def test_tensor_core_building_blocks(tc_selftest, mode):
    res = subprocess.run([tc_selftest, mode], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and f"{mode}: 0 mismatches" in res.stdout, res.stdout[-3000:]
