"""The native 16-bit GEMM (csrc/cpu/gemm_bf16.*): bfloat16 operands, float32 accumulation,
C in bfloat16 or float32; float16 through F16C conversion (storage only). Every bfloat16
path this build and CPU can run (avx512bf16, emulated, convert) is checked.

The bound, derived per element: the products of two 16-bit values are exact in float32,
so c32 = alpha * sum_k a_ik b_kj + beta * c0 computed in float32 carries at most K + 2
roundings, |c32 - c| <= gamma_(K+2) * S with S = |alpha| sum_k |a_ik b_kj| + |beta c0| and
gamma_n = n u32 / (1 - n u32), u32 = 2**-24 (Higham, eq. 3.5). A 16-bit C is c32 rounded
to nearest: |c16 - c| <= u |c| + (1 + u) gamma_(K+2) S, u = 2**-8 (bfloat16), 2**-11
(float16). c is the float64 product of the (exact) 16-bit inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import convnet as cn
from tests.helpers import bf16_gemm_paths

U32 = 2.0**-24
UNIT = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
SHAPES = [(1, 1, 1), (7, 5, 3), (17, 33, 65), (130, 70, 523), (9, 50, 7), (49, 97, 256),
          (8, 48, 2)]


def _native():
    native = cn.kernels._registry.get("native")
    if native is None or not hasattr(native, "gemm_bfloat16"):
        pytest.skip("native backend without the 16-bit GEMM")
    return native


def _bound(a, b, c0, alpha, beta, ta, tb, unit):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a64, b64 = (a64.T if ta else a64), (b64.T if tb else b64)
    k = a64.shape[1]
    want = alpha * (a64 @ b64)
    s = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta:
        c64 = c0.astype(np.float64)
        want += beta * c64
        s += abs(beta) * np.abs(c64)
    gamma = (k + 2) * U32 / (1 - (k + 2) * U32)
    return want, unit * np.abs(want) + (1 + unit) * gamma * s


def _operands(rng, m, n, k, ta, tb, dt):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
    return a, b


@pytest.mark.parametrize("bf16_path", bf16_gemm_paths(), indirect=True)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("c_dtype", ["16", "float32"])
@pytest.mark.parametrize("beta", [0.0, -0.75])
def test_gemm16_within_the_derived_bound(bf16_path, dtype, c_dtype, beta):
    native = _native()
    if dtype == "float16" and not hasattr(native, "gemm_float16"):
        pytest.skip("built without F16C: float16 runs on float32 copies")
    dt = np.dtype(cn.bfloat16) if dtype == "bfloat16" else np.dtype(np.float16)
    cdt = dt if c_dtype == "16" else np.dtype(np.float32)
    rng = np.random.default_rng(5)
    fn = getattr(native, f"gemm_{dtype}")
    for m, n, k in SHAPES:
        for ta, tb in ((False, False), (True, False), (False, True), (True, True)):
            a, b = _operands(rng, m, n, k, ta, tb, dt)
            c0 = rng.standard_normal((m, n)).astype(cdt)
            c = c0.copy() if beta else np.full((m, n), np.nan, cdt)  # beta 0: C never read
            fn(a, b, c, 1.5, beta, ta, tb)
            want, bound = _bound(a, b, c0, 1.5, beta, ta, tb,
                                 UNIT[dtype] if cdt == dt else 0.0)
            err = np.abs(c.astype(np.float64) - want)
            assert np.all(err <= bound), (m, n, k, ta, tb, float((err - bound).max()))


@pytest.mark.parametrize("bf16_path", bf16_gemm_paths(), indirect=True)
def test_16bit_c_is_the_float32_result_rounded_to_nearest_even(bf16_path):
    native = _native()
    rng = np.random.default_rng(2)
    a, b = _operands(rng, 37, 61, 300, False, True, cn.bfloat16)
    c32 = np.empty((37, 61), np.float32)
    c16 = np.empty((37, 61), cn.bfloat16)
    native.gemm_bfloat16(a, b, c32, 1.0, 0.0, False, True)
    native.gemm_bfloat16(a, b, c16, 1.0, 0.0, False, True)
    assert np.array_equal(c16.view(np.uint16), c32.astype(cn.bfloat16).view(np.uint16))


@pytest.mark.parametrize("bf16_path", bf16_gemm_paths(), indirect=True)
def test_gemm16_special_values_propagate(bf16_path):
    native = _native()
    a = np.ones((3, 5), cn.bfloat16)
    b = np.ones((5, 4), cn.bfloat16)
    a[0, 1] = np.inf
    a[1, 2] = np.nan
    b[4, 3] = -np.inf
    c = np.empty((3, 4), np.float32)
    native.gemm_bfloat16(a, b, c, 1.0, 0.0, False, False)
    with np.errstate(invalid="ignore"):
        want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_array_equal(c, want.astype(np.float32))


@pytest.mark.parametrize("bf16_path", bf16_gemm_paths(), indirect=True)
def test_gemm16_threads_agree(bf16_path):
    native = _native()
    rng = np.random.default_rng(3)
    a, b = _operands(rng, 300, 200, 700, False, False, cn.bfloat16)
    outs = []
    before = cn.get_num_threads()
    try:
        for nt in (1, 3):
            cn.set_num_threads(nt)
            c = np.empty((300, 200), np.float32)
            native.gemm_bfloat16(a, b, c, 1.0, 0.0, False, False)
            outs.append(c)
    finally:
        cn.set_num_threads(before)
    # every thread runs the same k order on its own tiles: the results are identical
    np.testing.assert_array_equal(outs[0], outs[1])


def test_the_boundary_runs_the_native_16bit_gemm():
    native = _native()
    rng = np.random.default_rng(4)
    a, b = _operands(rng, 20, 30, 40, False, False, cn.bfloat16)
    got = cn.kernels.gemm(a, b, backend="native")
    c32 = np.empty((20, 30), np.float32)
    native.gemm_bfloat16(a, b, c32, 1.0, 0.0, False, False)
    assert got.dtype == cn.bfloat16
    assert np.array_equal(got.view(np.uint16), c32.astype(cn.bfloat16).view(np.uint16))
    c = np.zeros((20, 30), np.float32)
    assert cn.kernels.gemm(a, b, c, beta=1.0, backend="native") is c
    np.testing.assert_array_equal(c, c32)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda n, a, b, c: n.gemm_bfloat16(a.astype(np.float16), b, c, 1, 0, False, False),
     TypeError, "a: expected dtype bfloat16"),
    (lambda n, a, b, c: n.gemm_bfloat16(a, b, c.astype(np.float64), 1, 0, False, False),
     TypeError, "c: expected dtype bfloat16 or float32"),
    (lambda n, a, b, c: n.gemm_bfloat16(a, b.T, c, 1, 0, False, False), ValueError,
     "C-contiguous"),
    (lambda n, a, b, c: n.gemm_bfloat16(a, b[:3], c, 1, 0, False, False), ValueError,
     "inner dimensions"),
    (lambda n, a, b, c: n.gemm_bfloat16(a, b, c[:, :2], 1, 0, False, False), ValueError,
     "c: "),
    (lambda n, a, b, c: n.gemm_bfloat16(a[0], b, c, 1, 0, False, False), ValueError,
     "a: expected a 2-D array"),
    (lambda n, a, b, c: n.gemm_bfloat16(a, b, c.astype(">f4"), 1, 0, False, False),
     TypeError, "c: expected dtype"),
    (lambda n, a, b, c: n.set_bf16_gemm_path("fast"), ValueError, "path: expected"),
])
def test_binding_refuses_bad_arrays(call, exc, msg):
    native = _native()
    a = np.ones((2, 5), cn.bfloat16)
    b = np.ones((5, 4), cn.bfloat16)
    c = np.zeros((2, 4), np.float32)
    with pytest.raises(exc, match=msg):
        call(native, a, b, c)


def test_binding_refuses_a_read_only_output():
    native = _native()
    c = np.zeros((2, 4), cn.bfloat16)
    c.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        native.gemm_bfloat16(np.ones((2, 5), cn.bfloat16), np.ones((5, 4), cn.bfloat16), c, 1,
                             0, False, False)


def test_the_path_is_reported():
    native = _native()
    assert native.bf16_gemm_path() in native.bf16_gemm_paths()
    assert "convert" in native.bf16_gemm_paths()


@pytest.mark.parametrize("m,k,n", [(0, 3, 4), (3, 0, 4), (3, 4, 0)])
def test_gemm16_empty_dimensions(m, k, n):
    _native()
    a, b = np.ones((m, k), cn.bfloat16), np.ones((k, n), cn.bfloat16)
    c = np.full((m, n), 2, cn.bfloat16)
    cn.kernels.gemm(a, b, c, beta=0.5, backend="native")
    np.testing.assert_array_equal(c.astype(np.float32), np.full((m, n), 1.0, np.float32))
    c32 = np.full((m, n), np.nan, np.float32)  # beta 0: never read, zero sum
    cn.kernels.gemm(a, b, c32, backend="native")
    np.testing.assert_array_equal(c32, np.zeros((m, n), np.float32))
