"""Tensor-core kernels (csrc/cuda/gemm_tc.cu, conv2d_tc.cu): float16 and bfloat16 operands
with float32 accumulation, and float32 on TF32, against the float64 reference of the
rounded inputs with a derived bound, and on the GPU against cuBLAS (CuPy's matmul).

The bound. The inputs are 16-bit (or rounded to TF32 by the kernel, which the reference
repeats), so every product a*b is exact in float32 and the only errors are the float32
additions of the accumulation and the final rounding to the output type. For a dot
product of length K summed in float32, |computed - exact| <= gamma * sum |a_i b_i| with
gamma = K * u32 (u32 = 2^-24) to first order; tensor cores may truncate instead of
rounding to nearest (Fasi et al. 2021), which at most doubles the per-addition error, and
alpha/beta add two more roundings. So per element

    |c - ref| <= 2 (K + 8) u32 (|alpha| (|A| |B|) + |beta c0|) + u_out |ref| + tiny

with u_out the unit roundoff of the output (2^-11 float16, 2^-8 bfloat16, 2^-24 float32)
and tiny half the smallest subnormal of the output (float16 underflow). A kernel that
drops, repeats or misplaces one product is off by about one |a_i b_i|, which this bound
rejects once K > 1 terms of similar size contribute.

Every test here carries the gpu marker; tests/kernels/test_cuda_tc_emulated.py runs the
same functions on the CPU emulator (warp fragments of mma.sync and ldmatrix included).
"""

import numpy as np
import pytest

import convnet as cn
from convnet.kernels import reference as ref
from tests.kernels.test_cuda import host, nan

pytestmark = pytest.mark.gpu
K = cn.kernels

U32 = 2.0 ** -24


def _bf16():
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def dtypes16():
    return [np.dtype(np.float16), _bf16()]


UNIT = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": U32}
TINY = {"float16": 2.0 ** -25, "bfloat16": 2.0 ** -134, "float32": 2.0 ** -150}


@pytest.fixture(scope="module")
def cp():
    info = cn.backends()["cuda"]
    if not info["available"]:
        pytest.skip(f"CUDA backend unavailable: {info['detail']}")
    import cupy

    return cupy


@pytest.fixture(scope="module")
def cu(cp):
    import importlib

    return importlib.import_module("convnet.kernels._cuda")


def device(cp, a):
    """a on the device; bfloat16 needs CuPy's ml_dtypes support (CuPy >= 14)."""
    try:
        return cp.asarray(a)
    except (TypeError, ValueError, NotImplementedError) as exc:
        pytest.skip(f"this CuPy cannot hold {a.dtype} arrays: {exc}")


def round_tf32(a):
    """float32 -> TF32 as cvt.rna.tf32.f32 does: 10 mantissa bits, ties away from zero."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    finite = (u & 0x7F800000) != 0x7F800000
    r = np.where(finite, (u + np.uint32(0x1000)) & np.uint32(0xFFFFE000), u)
    return r.astype(np.uint32).view(np.float32)


def assert_within(actual, expected, bound, what):
    actual = np.asarray(actual).astype(np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values in the result"
    excess = np.abs(actual - expected) - bound
    if (excess > 0).any():
        i = np.unravel_index(int(np.argmax(excess)), excess.shape)
        raise AssertionError(f"{what}: {int((excess > 0).sum())} element(s) beyond the bound; "
                             f"worst at {i}: {actual[i]!r} vs {expected[i]!r} "
                             f"(bound {bound[i]:.3g})")


def dot_bound(k, magnitude, expected, out):
    return 2 * (k + 8) * U32 * magnitude + UNIT[out] * np.abs(expected) + TINY[out]


# --------------------------------------------------------------------------- GEMM

GEMM_SHAPES = [(1, 1, 1), (3, 5, 7), (16, 8, 16), (17, 33, 65), (64, 128, 96),
               (130, 70, 100), (257, 300, 40), (50, 3000, 33)]


def gemm_case(cp, cu, m, n, k, trans_a, trans_b, dtype, out_dtype, seed=0):
    """One call through the adapter (alpha 1.5 over a NaN-filled c, then alpha -0.5 and
    beta 0.25 over a random c) checked against the float64 product of the rounded inputs."""
    rng = np.random.default_rng(seed + m * 7 + n * 3 + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(out_dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if np.dtype(dtype) == np.float32:  # TF32: the kernel rounds the inputs; so does the oracle
        a64, b64 = round_tf32(a).astype(np.float64), round_tf32(b).astype(np.float64)
    opa, opb = (a64.T if trans_a else a64), (b64.T if trans_b else b64)
    exact, mag = opa @ opb, np.abs(opa) @ np.abs(opb)
    out = np.dtype(out_dtype).name
    ag, bg = device(cp, a), device(cp, b)

    c = nan(cp, (m, n), out_dtype)
    cu.gemm(ag, bg, c, 1.5, 0.0, trans_a, trans_b)
    assert_within(host(c), 1.5 * exact, dot_bound(k, 1.5 * mag, 1.5 * exact, out), "alpha*ab")
    c = device(cp, c0)
    cu.gemm(ag, bg, c, -0.5, 0.25, trans_a, trans_b)
    c064 = c0.astype(np.float64)
    expected = -0.5 * exact + 0.25 * c064
    bound = dot_bound(k, 0.5 * mag + 0.25 * np.abs(c064), expected, out)
    assert_within(host(c), expected, bound, "alpha*ab + beta*c")
    return host(c)


@pytest.mark.parametrize("out", ["same", "float32"])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m,n,k", GEMM_SHAPES)
@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
def test_gemm_16bit_within_the_rounding_bound(cp, cu, dt, m, n, k, trans_a, trans_b, out):
    dtype = np.dtype(np.float16) if dt == "float16" else _bf16()
    gemm_case(cp, cu, m, n, k, trans_a, trans_b, dtype,
              dtype if out == "same" else np.dtype(np.float32))


@pytest.mark.parametrize("m,n,k", [(64, 64, 64), (300, 257, 513), (2048, 1024, 512)])
def test_gemm_float16_agrees_with_cublas(cp, cu, m, n, k):
    """cuBLAS accumulates float16 in float32 too: both are within the bound of the exact
    product, so they are within twice of each other."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    ag, bg = cp.asarray(a), cp.asarray(b)
    c = nan(cp, (m, n), np.float16)
    cu.gemm(ag, bg, c, 1.0, 0.0, False, False)
    theirs = host(cp.matmul(ag, bg)).astype(np.float64)
    mag = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    assert_within(host(c), theirs, 2 * dot_bound(k, mag, theirs, "float16"), "vs cuBLAS")


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m,n,k", [(3, 5, 7), (17, 33, 65), (130, 70, 100), (257, 300, 40)])
def test_gemm_tf32_within_the_rounding_bound(cp, cu, monkeypatch, m, n, k, trans_a, trans_b):
    monkeypatch.setitem(cn.kernels.precision._state, "matmul", "high")
    gemm_case(cp, cu, m, n, k, trans_a, trans_b, np.float32, np.float32)


def test_gemm_tf32_only_when_allowed(cp, cu, monkeypatch):
    """allow_tf32 False (the default): float32 accuracy (TF32 would miss the bound by far);
    True: TF32's result, within its own bound and measurably not float32's."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 70)).astype(np.float32)
    b = rng.standard_normal((70, 50)).astype(np.float32)
    exact32 = a.astype(np.float64) @ b.astype(np.float64)
    mag = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    ag, bg = device(cp, a), device(cp, b)
    assert not cn.backends.cuda.matmul.allow_tf32
    c = nan(cp, (40, 50), np.float32)
    cu.gemm(ag, bg, c, 1.0, 0.0, False, False)
    assert_within(host(c), exact32, dot_bound(70, mag, exact32, "float32"), "float32 path")

    monkeypatch.setitem(cn.kernels.precision._state, "matmul", "highest")
    cn.backends.cuda.matmul.allow_tf32 = True
    assert cn.get_float32_matmul_precision() == "high"
    c = nan(cp, (40, 50), np.float32)
    cu.gemm(ag, bg, c, 1.0, 0.0, False, False)
    exact_tf32 = round_tf32(a).astype(np.float64) @ round_tf32(b).astype(np.float64)
    assert_within(host(c), exact_tf32, dot_bound(70, mag, exact_tf32, "float32"), "TF32 path")
    # the float32 bound is below 1e-5 of the magnitude; TF32 rounding (2^-11 per input)
    # moves the results by far more
    assert np.max(np.abs(host(c) - exact32) / mag) > 2e-5


# --------------------------------------------------------------------------- conv2d

CONV_CASES = [
    ((1, 1, 5, 5), (1, 3, 3), 1, 0, 1),
    ((2, 3, 7, 9), (5, 3, 5), 1, (1, 2), 1),
    ((3, 2, 8, 8), (4, 2, 2), 3, 0, 1),
    ((2, 5, 11, 10), (3, 3, 3), 2, "same", 1),
    ((1, 4, 9, 9), (6, 3, 3), 1, 2, 2),
    ((2, 8, 6, 6), (16, 1, 1), 1, 0, 1),
    ((2, 6, 14, 14), (16, 5, 5), 1, 0, 1),
    ((2, 17, 5, 5), (33, 3, 3), 1, 1, 1),
    ((3, 2, 5, 6), (2, 3, 2), (2, 1), ((1, 0), (0, 2)), (1, 2)),
    ((4, 16, 12, 12), (136, 3, 3), 1, 1, 1),
]
CONV_IDS = [f"x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-d{c[4]}".replace(" ", "") for c in CONV_CASES]


def conv_case(cp, cu, case, dtype):
    """Forward, data and weight gradients of one case against the float64 reference of
    the rounded inputs, each within the bound of its reduction length."""
    x_shape, (k, r, s), stride, padding, dilation = case
    rng = np.random.default_rng(11)
    w_shape = (k, x_shape[1], r, s)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal((k,)).astype(dtype)
    y_shape, args = K._conv_geometry(x_shape, w_shape, stride, padding, dilation)
    dy = rng.standard_normal(y_shape).astype(dtype)
    r64 = (round_tf32 if np.dtype(dtype) == np.float32 else np.asarray)
    x64, w64, dy64 = (r64(v).astype(np.float64) for v in (x, w, dy))
    b64 = bias.astype(np.float64)
    out = np.dtype(dtype).name
    xg, wg, bg, dyg = (device(cp, v) for v in (x, w, bias, dy))

    def run_ref(fn, shape, *arrays):
        res = np.empty(shape)
        fn(*arrays, res, *args)
        return res

    y = nan(cp, y_shape, dtype)
    cu.conv2d_forward(xg, wg, bg, y, *args)
    exact = run_ref(ref.conv2d_forward, y_shape, x64, w64, b64)
    mag = run_ref(ref.conv2d_forward, y_shape, np.abs(x64), np.abs(w64), np.abs(b64))
    assert_within(host(y), exact, dot_bound(w[0].size, mag, exact, out), "forward")

    dx = nan(cp, x_shape, dtype)
    cu.conv2d_backward_data(dyg, wg, dx, *args)
    exact = run_ref(ref.conv2d_backward_data, x_shape, dy64, w64)
    mag = run_ref(ref.conv2d_backward_data, x_shape, np.abs(dy64), np.abs(w64))
    assert_within(host(dx), exact, dot_bound(k * r * s, mag, exact, out), "backward data")

    dw = nan(cp, w_shape, dtype)
    cu.conv2d_backward_weight(dyg, xg, dw, *args)
    exact = run_ref(ref.conv2d_backward_weight, w_shape, dy64, x64)
    mag = run_ref(ref.conv2d_backward_weight, w_shape, np.abs(dy64), np.abs(x64))
    npq = y_shape[0] * y_shape[2] * y_shape[3]
    assert_within(host(dw), exact, dot_bound(npq, mag, exact, out), "backward weight")


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_16bit_within_the_rounding_bound(cp, cu, case, dt):
    conv_case(cp, cu, case, np.dtype(np.float16) if dt == "float16" else _bf16())


@pytest.mark.parametrize("case", CONV_CASES[::3], ids=CONV_IDS[::3])
def test_conv2d_tf32_when_cudnn_allow_tf32(cp, cu, monkeypatch, case):
    monkeypatch.setitem(cn.kernels.precision._state, "cudnn_tf32", True)
    conv_case(cp, cu, case, np.float32)


def test_conv2d_float16_bias_gradient(cp, cu):
    rng = np.random.default_rng(2)
    dy = rng.standard_normal((3, 5, 4, 6)).astype(np.float16)
    db = nan(cp, (5,), np.float16)
    cu.conv2d_backward_bias(device(cp, dy), db)
    exact = dy.astype(np.float64).sum(axis=(0, 2, 3))
    mag = np.abs(dy.astype(np.float64)).sum(axis=(0, 2, 3))
    assert_within(host(db), exact, dot_bound(72, mag, exact, "float16"), "bias gradient")


# --------------------------------------------------------------------------- public API


def public_api_case(backend):
    """convnet.kernels.gemm / conv2d_* on 16-bit arrays through the validation boundary,
    which hands 16-bit calls to the backend's <kernel>_<dtype> (the tensor-core kernels),
    with float32 accumulators where the manifest allows them (gemm's c, the conv bias and
    dw_out)."""
    import convnet.kernels._registry as registry

    module = registry.get(backend)
    xp = np if module.__name__.endswith("_emulated") else module._cupy()
    rng = np.random.default_rng(8)
    f16 = np.dtype(np.float16)
    a = rng.standard_normal((33, 40)).astype(f16)
    b = rng.standard_normal((40, 24)).astype(f16)
    c = K.gemm(xp.asarray(a), xp.asarray(b), backend=backend)
    assert c.dtype == f16 and c.shape == (33, 24)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    mag = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    assert_within(host(c), exact, dot_bound(40, mag, exact, "float16"), "K.gemm float16")
    c32 = xp.full((33, 24), np.nan, np.float32)
    K.gemm(xp.asarray(a), xp.asarray(b), c32, backend=backend)
    assert_within(host(c32), exact, dot_bound(40, mag, exact, "float32"), "float32 c")

    x = rng.standard_normal((2, 3, 9, 8)).astype(f16)
    w = rng.standard_normal((5, 3, 3, 3)).astype(f16)
    bias = rng.standard_normal(5).astype(f16)
    y = K.conv2d_forward(xp.asarray(x), xp.asarray(w), xp.asarray(bias), 1, 1, backend=backend)
    assert y.dtype == f16
    y_shape, args = K._conv_geometry(x.shape, w.shape, 1, 1, 1)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for b in (bias, rng.standard_normal(5).astype(np.float32)):  # a float32 bias: backend level
        if b.dtype != f16:
            y = xp.full(y_shape, np.nan, f16)
            cn.kernels._boundary.launch("conv2d_forward", backend, xp.asarray(x), xp.asarray(w),
                                        xp.asarray(b), y, *args)
        exact, mag = np.empty(y_shape), np.empty(y_shape)
        ref.conv2d_forward(x64, w64, b.astype(np.float64), exact, *args)
        ref.conv2d_forward(np.abs(x64), np.abs(w64), np.abs(b.astype(np.float64)), mag, *args)
        assert_within(host(y), exact, dot_bound(27, mag, exact, "float16"),
                      f"conv2d_forward, {b.dtype} bias")

    dy = rng.standard_normal(y_shape).astype(f16)
    dy64 = dy.astype(np.float64)
    dw32 = xp.full(w.shape, np.nan, np.float32)  # a float32 weight gradient (ACC)
    cn.kernels._boundary.launch("conv2d_backward_weight", backend, xp.asarray(dy),
                                xp.asarray(x), dw32, *args)
    exact, mag = np.empty(w.shape), np.empty(w.shape)
    ref.conv2d_backward_weight(dy64, x64, exact, *args)
    ref.conv2d_backward_weight(np.abs(dy64), np.abs(x64), mag, *args)
    npq = y_shape[0] * y_shape[2] * y_shape[3]
    assert_within(host(dw32), exact, dot_bound(npq, mag, exact, "float32"), "dw float32")
    dx = K.conv2d_backward_data(xp.asarray(dy), xp.asarray(w), x.shape, 1, 1, backend=backend)
    assert dx.dtype == f16
    exact, mag = np.empty(x.shape), np.empty(x.shape)
    ref.conv2d_backward_data(dy64, w64, exact, *args)
    ref.conv2d_backward_data(np.abs(dy64), np.abs(w64), mag, *args)
    assert_within(host(dx), exact, dot_bound(45, mag, exact, "float16"), "K.conv2d_backward_data")


def test_public_api_runs_16bit_on_tensor_cores(cp, monkeypatch):
    calls = []
    import convnet.kernels._cuda as adapter

    for name in ("gemm_tc", "conv2d_forward_tc", "conv2d_backward_data_tc",
                 "conv2d_backward_weight_tc"):
        fn = getattr(adapter._ext, name)
        monkeypatch.setattr(adapter._ext, name,
                            lambda *a, _fn=fn, _n=name: (calls.append(_n), _fn(*a))[1])
    public_api_case("cuda")
    assert calls == ["gemm_tc", "gemm_tc", "conv2d_forward_tc", "conv2d_forward_tc",
                     "conv2d_backward_weight_tc", "conv2d_backward_data_tc"]
