"""CUDA backend checks that need no GPU: the extension builds and exposes every kernel,
arguments are refused before anything reaches a device, ``backends()`` says why CUDA is
unavailable, and the index arithmetic of the CUDA kernels (the implicit-GEMM tables, the
pooling windows), replayed in NumPy, agrees with the CPU kernels."""

import importlib
import math
import os
import shutil
import types

import numpy as np
import pytest

import convnet as cn
from tests.helpers import assert_close

K = cn.kernels

# Every backend mirrors the manifest's kernels.
KERNELS = list(K.spec.NAMES)


def _nvcc_present():
    return any(os.access(os.path.join(h, "bin", "nvcc"), os.X_OK)
               for h in [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"] if h) or \
        shutil.which("nvcc") is not None


def cuda_ext():
    """convnet._cuda; a failure where nvcc exists (or the build is required) is a failure."""
    try:
        return importlib.import_module("convnet._cuda")
    except ImportError as exc:
        if os.environ.get("CONVNET_REQUIRE_CUDA_BUILD") == "1" or _nvcc_present():
            pytest.fail(f"nvcc is present but convnet._cuda does not import: {exc}")
        pytest.skip(f"convnet._cuda not built (no nvcc): {exc}")


@pytest.fixture
def ext():
    return cuda_ext()


@pytest.fixture
def adapter():
    cuda_ext()
    return importlib.import_module("convnet.kernels._cuda")


# --------------------------------------------------------------------------- build


def test_extension_exposes_every_kernel_of_the_cpu_one(ext, adapter):
    native = cn.backends()["native"]
    if native["available"]:
        from convnet import _C

        missing_in_c = [k for k in KERNELS if not hasattr(_C, k)]
        assert not missing_in_c, f"the list is out of date with convnet._C: {missing_in_c}"
    assert [k for k in KERNELS if not callable(getattr(ext, k, None))] == []
    assert [k for k in KERNELS if not callable(getattr(adapter, k, None))] == []
    assert callable(adapter.describe)


def test_extension_reports_its_build(ext):
    archs = ext.compiled_archs()
    assert archs.startswith("sm_"), archs
    assert ext.runtime_version() >= 11000


def test_backends_says_why_cuda_is_unavailable():
    info = cn.backends()["cuda"]
    assert set(info) == {"available", "detail"}
    assert isinstance(info["detail"], str) and info["detail"]
    if not info["available"]:
        # One of the reasons a user can act on.
        reasons = ("CuPy is not installed", "not built", "driver", "no CUDA device",
                   "CONVNET_DISABLE_CUDA")
        assert any(r in info["detail"] for r in reasons), info["detail"]
    else:
        assert "sm_" in info["detail"]


def test_import_convnet_never_needs_cuda():
    assert "cuda" in cn.backends()
    x = cn.tensor(np.ones((2, 3), np.float32))
    assert x.device == "cpu"


# --------------------------------------------------------------------------- dispatch


def _np(*shape, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


@pytest.mark.parametrize("call", [
    lambda: K.gemm(_np(2, 3), _np(3, 4), backend="cuda"),
    lambda: K.conv2d_forward(_np(1, 2, 5, 5), _np(3, 2, 3, 3), backend="cuda"),
    lambda: K.conv2d_backward_data(_np(1, 3, 3, 3), _np(3, 2, 3, 3), (1, 2, 5, 5),
                                   backend="cuda"),
    lambda: K.conv2d_backward_weight(_np(1, 3, 3, 3), _np(1, 2, 5, 5), (3, 2, 3, 3),
                                     backend="cuda"),
    lambda: K.conv2d_backward_bias(_np(1, 3, 3, 3), backend="cuda"),
    lambda: K.max_pool2d_forward(_np(1, 2, 4, 4), 2, backend="cuda"),
    lambda: K.avg_pool2d_forward(_np(1, 2, 4, 4), 2, backend="cuda"),
    lambda: K.avg_pool2d_backward(_np(1, 2, 2, 2), (1, 2, 4, 4), 2, backend="cuda"),
    lambda: K.batch_norm_forward_training(_np(4, 3, 2, 2), backend="cuda"),
    lambda: K.batch_norm_forward_inference(_np(4, 3), _np(3), _np(3), backend="cuda"),
    lambda: K.batch_norm_backward(_np(4, 3), _np(4, 3), _np(3), _np(3), backend="cuda"),
    lambda: K.activation_forward(_np(5), "relu", backend="cuda"),
    lambda: K.activation_backward(_np(5), _np(5), "tanh", backend="cuda"),
], ids=["gemm", "conv_fwd", "conv_bwd_data", "conv_bwd_weight", "conv_bwd_bias", "max_pool",
        "avg_pool", "avg_pool_bwd", "bn_train", "bn_eval", "bn_bwd", "act_fwd", "act_bwd"])
def test_numpy_arrays_to_the_cuda_backend_are_refused(call):
    with pytest.raises(ValueError, match="needs CuPy arrays"):
        call()


# --------------------------------------------------------------------------- binding checks
# Without a driver any call that reached the device would raise RuntimeError; a
# ValueError/TypeError here shows the check ran first.

G_CONV = (2, 3, 7, 7, 4, 3, 3, 5, 5, 1, 1, 0, 0, 1, 1)
G_POOL = (2, 3, 8, 8, 4, 4, 2, 2, 2, 2, 0, 0)


def test_binding_refuses_a_bad_dtype(ext):
    with pytest.raises(TypeError, match="dtype: expected"):
        ext.gemm("float16", [8, 8, 8], [4, 4, 4], 2, 2, 2, 2, 2, 2, 1.0, 0.0, False, False, 0,
                 0)
    with pytest.raises(TypeError, match="dtype: expected"):
        ext.tanh_forward("int32", [8, 8], [4, 4], [], 0, 0)


def test_binding_refuses_missing_buffers(ext):
    # every buffer arrives as (pointer, element count); a null pointer is None, refused
    # where the kernel needs that buffer
    with pytest.raises(ValueError, match="a: required"):
        ext.gemm("float32", [0, 8, 8], [4, 4, 4], 2, 2, 2, 2, 2, 2, 1.0, 0.0, False, False, 0,
                 0)
    conv_counts = [2 * 3 * 49, 4 * 27, 4, 2 * 4 * 25, 4 * 27]
    with pytest.raises(ValueError, match="table: required"):
        ext.conv2d_forward("float32", [8, 8, 0, 8, 0], conv_counts, G_CONV, 0, 0)
    with pytest.raises(ValueError, match="indices: required"):
        ext.max_pool2d_forward("float32", [8, 8, 0], [384, 96, 96], G_POOL, 0, 0)
    with pytest.raises(ValueError, match="dx: required"):
        ext.elu_backward("float64", [8, 8, 0], [10, 10, 10], [1.0, 1.0], 0, 0)


def test_binding_refuses_short_buffers_and_bad_sizes(ext):
    with pytest.raises(ValueError, match="leading dimensions"):
        ext.gemm("float32", [8, 8, 8], [16, 16, 16], 4, 4, 4, 3, 4, 4, 1.0, 0.0, False, False,
                 0, 0)
    with pytest.raises(ValueError, match="a: holds 15 elements, the sizes need 16"):
        ext.gemm("float32", [8, 8, 8], [15, 16, 16], 4, 4, 4, 4, 4, 4, 1.0, 0.0, False, False,
                 0, 0)
    with pytest.raises(ValueError, match="gemm"):
        ext.gemm("float32", [8, 8, 8], [16, 16, 16], -1, 4, 4, 4, 4, 4, 1.0, 0.0, False, False,
                 0, 0)
    with pytest.raises(ValueError, match="y: holds 9 elements"):
        ext.sigmoid_forward("float32", [8, 8], [10, 9], [], 0, 0)
    with pytest.raises(ValueError, match="device"):
        ext.tanh_forward("float32", [8, 8], [4, 4], [], 0, -1)


@pytest.mark.parametrize("geom,match", [
    (G_CONV[:14], "15 ints"),
    ((2, 3, 7, 7, 4, 3, 3, 0, 5, 1, 1, 0, 0, 1, 1), "sizes"),
    ((2, 3, 7, 7, 4, 3, 3, 5, 5, 0, 1, 0, 0, 1, 1), "stride"),
    ((2, 3, 7, 7, 4, 3, 3, 5, 5, 1, 1, -1, 0, 1, 1), "padding"),
    ((2, 0, 7, 7, 4, 3, 3, 5, 5, 1, 1, 0, 0, 1, 1), "sizes"),
    ((1, 2**20, 2**6, 2**6, 1, 1, 1, 2**6, 2**6, 1, 1, 0, 0, 1, 1), "2\\^31"),
])
def test_binding_refuses_bad_conv_geometry(ext, geom, match):
    big = [2**40] * 5
    for call in (lambda: ext.conv2d_forward("float32", [8] * 5, big, geom, 0, 0),
                 lambda: ext.conv2d_backward_data("float32", [8] * 4, big[:4], geom, 0, 0),
                 lambda: ext.conv2d_backward_weight("float32", [8] * 4, big[:4], geom, 0, 0)):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("geom,match", [
    (G_POOL[:11], "12 ints"),
    ((2, 3, 8, 8, 4, 4, 0, 2, 2, 2, 0, 0), "kernel"),
    ((2, 3, 8, 8, 4, 4, 2, 2, 2, 2, -1, 0), "padding"),
])
def test_binding_refuses_bad_pool_geometry(ext, geom, match):
    with pytest.raises(ValueError, match=match):
        ext.max_pool2d_forward("float32", [8] * 3, [2**40] * 3, geom, 0, 0)
    with pytest.raises(ValueError, match=match):
        ext.avg_pool2d_backward("float32", [8] * 2, [2**40] * 2, geom, True, 0, 0)


# --------------------------------------------------------------------------- adapter checks


class _Flags:
    def __init__(self, c):
        self.c_contiguous = c
        self.writeable = True


class FakeCupyArray:
    """Just what the validation boundary reads from a CuPy array (it runs before CuPy is
    used); each one at its own address."""

    _next = [4096]

    def __init__(self, shape, dtype=np.float32, contiguous=True, device=0):
        self.shape = tuple(shape)
        self.ndim = len(shape)
        self.size = int(np.prod(shape))
        self.dtype = np.dtype(dtype)
        self.nbytes = self.size * self.dtype.itemsize
        self.flags = _Flags(contiguous)
        self.data = types.SimpleNamespace(ptr=self._next[0])
        self._next[0] += self.nbytes + 4096
        self.device = types.SimpleNamespace(id=device)


FakeCupyArray.__module__ = "cupy._fake"


def F(*shape, **kw):
    return FakeCupyArray(shape, **kw)


class _Boundary:
    """``boundary.NAME(*args)`` validates a backend-level call as every backend gets it."""

    def __getattr__(self, name):
        from convnet.kernels import _boundary

        return lambda *args: _boundary.validate(name, args)


def test_boundary_refuses_mixed_numpy_and_cupy_arrays():
    with pytest.raises(ValueError, match="different devices"):
        _Boundary().gemm(F(2, 2), np.ones((2, 2), np.float32), F(2, 2), 1.0, 0.0, False, False)


@pytest.mark.parametrize("call,exc,match", [
    (lambda a: a.gemm(F(2, 3), F(3, 4, dtype=np.float64), F(2, 4), 1, 0, False, False),
     TypeError, "b: expected dtype float32, got float64"),
    (lambda a: a.gemm(F(2, 3), F(4, 4), F(2, 4), 1, 0, False, False), ValueError, "inner"),
    (lambda a: a.gemm(F(2, 3), F(3, 4), F(4, 2), 1, 0, False, False), ValueError, "c: expected"),
    (lambda a: a.gemm(F(2, 3, contiguous=False), F(3, 4), F(2, 4), 1, 0, False, False),
     ValueError, "C-contiguous"),
    (lambda a: a.gemm(F(2, 3, dtype=np.int32), F(3, 4), F(2, 4), 1, 0, False, False),
     TypeError, "float32 or float64"),
    (lambda a: a.conv2d_forward(F(1, 2, 5, 5), F(3, 4, 3, 3), None, F(1, 3, 3, 3),
                                1, 1, 0, 0, 1, 1), ValueError, "w: expected shape"),
    (lambda a: a.conv2d_forward(F(1, 2, 5, 5), F(3, 2, 3, 3), F(4), F(1, 3, 3, 3),
                                1, 1, 0, 0, 1, 1), ValueError, "b: expected shape"),
    (lambda a: a.conv2d_backward_bias(F(1, 3, 3, 3), F(4)), ValueError, "db: expected"),
    (lambda a: a.max_pool2d_forward(F(1, 2, 4, 4), F(1, 2, 2, 2), F(1, 2, 2, 2), 2, 2, 2, 2,
                                    0, 0), TypeError, "indices: expected dtype int64"),
    (lambda a: a.max_pool2d_backward(F(1, 2, 2, 2), F(1, 2, 2, 2, dtype=np.int64),
                                     F(1, 3, 4, 4)), ValueError, "dy: expected shape"),
    (lambda a: a.batch_norm_forward_training(F(4, 3, 5), F(3), F(3), F(4, 3, 5), F(2), F(3),
                                             F(3), 1e-5), ValueError, "mean: expected"),
    (lambda a: a.batch_norm_backward(F(4, 3, 5), F(4, 3, 5, dtype=np.float64), F(3), F(3),
                                     F(3), F(4, 3, 5), F(3), F(3)), TypeError, "x: expected dtype"),
    (lambda a: a.tanh_forward(F(4, 3), F(13)), ValueError, "y: expected shape"),
    (lambda a: a.elu_backward(F(4), F(4), F(5), 1.0, 1.0), ValueError, "dx: expected shape"),
    (lambda a: a.gelu_forward(F(4), F(4), 2), ValueError, r"approximate: must be in \[0, 1\]"),
])
def test_boundary_checks_cupy_arrays_before_any_launch(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_Boundary())


# --------------------------------------------------------------------------- index arithmetic
# NumPy replays of what the CUDA kernels compute from their tables and windows, compared
# with the CPU kernels, so the index math is tested where no GPU is.

CONV_CASES = [
    ((2, 3, 7, 9), (5, 3, 5), (1, 1), (1, 2), (1, 1)),
    ((3, 2, 8, 8), (4, 2, 2), (3, 3), (0, 0), (1, 1)),
    ((1, 4, 9, 9), (6, 3, 3), (1, 1), (2, 2), (2, 2)),
    ((3, 2, 5, 6), (2, 3, 2), (2, 1), (1, 0), (1, 2)),
    ((2, 5, 11, 10), (3, 3, 3), (2, 2), (1, 1), (1, 1)),
]


def _geometry(x_shape, kshape, stride, pads, dilation, out=None):
    n, c, h, w = x_shape
    k, r, s = kshape
    if out is None:
        out = ((h + 2 * pads[0] - (r - 1) * dilation[0] - 1) // stride[0] + 1,
               (w + 2 * pads[1] - (s - 1) * dilation[1] - 1) // stride[1] + 1)
    return n, c, h, w, k, r, s, out[0], out[1]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_table_gather_replays_the_forward_kernel(adapter, case):
    x_shape, kshape, stride, pads, dil = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    n, c, h, w, k, r, s, p, q = _geometry(x_shape, kshape, stride, pads, dil)
    wt = rng.standard_normal((k, c, r, s))
    table = adapter.conv_table(c, h, w, r, s, dil[0], dil[1])
    assert table.dtype == np.int32 and table.shape == (c * r * s, 4)
    # Im2colCols: per column (n, p, q): hb, wb and off = n*CHW + hb*W + wb; per row: table.
    flat = x.ravel()
    cols = np.zeros((c * r * s, n * p * q))
    for npq in range(n * p * q):
        img, pq = divmod(npq, p * q)
        pp, qq = divmod(pq, q)
        hb, wb = pp * stride[0] - pads[0], qq * stride[1] - pads[1]
        off = img * c * h * w + hb * w + wb
        for crs in range(c * r * s):
            t = table[crs]
            if 0 <= hb + t[1] < h and 0 <= wb + t[2] < w:
                cols[crs, npq] = flat[off + t[0]]
    y = (wt.reshape(k, -1) @ cols).reshape(k, n, p, q).transpose(1, 0, 2, 3)
    expected = K.conv2d_forward(x, wt, None, stride, pads, dil, backend="native") \
        if cn.backends()["native"]["available"] else \
        K.conv2d_forward(x, wt, None, stride, pads, dil)
    assert_close(y, expected, np.float64, "table-driven forward")


@pytest.mark.parametrize("case", CONV_CASES)
def test_dgrad_table_gather_replays_the_data_gradient_kernel(adapter, case):
    x_shape, kshape, stride, pads, dil = case
    rng = np.random.default_rng(1)
    n, c, h, w, k, r, s, p, q = _geometry(x_shape, kshape, stride, pads, dil)
    wt = rng.standard_normal((k, c, r, s))
    dy = rng.standard_normal((n, k, p, q))
    table = adapter.dgrad_table(k, c, p, q, r, s, dil[0], dil[1])
    wflat, dyflat = wt.ravel(), dy.ravel()
    # FilterRows: A[c][krs] = w[table.w + c*R*S]; GradCols: divisibility by the stride.
    a = np.array([[wflat[table[krs, 3] + cc * r * s] for krs in range(k * r * s)]
                  for cc in range(c)])
    b = np.zeros((k * r * s, n * h * w))
    for nhw in range(n * h * w):
        img, hw = divmod(nhw, h * w)
        hh, ww = divmod(hw, w)
        hp, wp = hh + pads[0], ww + pads[1]
        for krs in range(k * r * s):
            t = table[krs]
            pp, qq = hp - t[1], wp - t[2]
            if pp < 0 or qq < 0 or pp % stride[0] or qq % stride[1]:
                continue
            pp //= stride[0]
            qq //= stride[1]
            if pp < p and qq < q:
                b[krs, nhw] = dyflat[img * k * p * q + t[0] + pp * q + qq]
    dx = (a @ b).reshape(c, n, h, w).transpose(1, 0, 2, 3)
    expected = K.conv2d_backward_data(dy, wt, x_shape, stride, pads, dil)
    assert_close(dx, expected, np.float64, "table-driven data gradient")


POOL_CASES = [
    ((1, 1, 4, 4), (2, 2), (2, 2), (0, 0)),
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1)),
    ((2, 5, 8, 6), (2, 3), (1, 2), (1, 1)),
    ((3, 2, 9, 9), (2, 2), (3, 3), (0, 0)),
    ((1, 4, 5, 5), (5, 5), (1, 1), (2, 2)),
    ((2, 3, 11, 5), (3, 1), (2, 1), (1, 0)),
]


def _divisor(h, w, kh, kw, sh, sw, ph, pw, p, q, cip):
    hs, ws = p * sh - ph, q * sw - pw
    if cip:
        return (min(hs + kh, h + ph) - hs) * (min(ws + kw, w + pw) - ws)
    return (min(hs + kh, h) - max(hs, 0)) * (min(ws + kw, w) - max(ws, 0))


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool_windows_replay_the_kernels(case, cip):
    x_shape, (kh, kw), (sh, sw), (ph, pw) = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape)
    n, c, h, w = x_shape
    y = K.avg_pool2d_forward(x, (kh, kw), (sh, sw), (ph, pw), cip)
    p, q = y.shape[2:]
    # avg_pool_forward_kernel
    yk = np.zeros_like(y)
    for pp in range(p):
        for qq in range(q):
            hs, ws = pp * sh - ph, qq * sw - pw
            win = x[:, :, max(hs, 0):min(hs + kh, h), max(ws, 0):min(ws + kw, w)]
            yk[:, :, pp, qq] = win.sum(axis=(2, 3)) / _divisor(h, w, kh, kw, sh, sw, ph, pw,
                                                                 pp, qq, cip)
    assert_close(yk, y, np.float64, "avg pool forward")
    # avg_pool_backward_kernel: the gather over the windows that contain (h, w)
    dy = rng.standard_normal(y.shape)
    dx = np.zeros(x_shape)
    for hh in range(h):
        for ww in range(w):
            hp, wp = hh + ph, ww + pw
            p0 = (hp - kh + 1 + sh - 1) // sh if hp - kh + 1 > 0 else 0
            p1 = min(hp // sh, p - 1)
            q0 = (wp - kw + 1 + sw - 1) // sw if wp - kw + 1 > 0 else 0
            q1 = min(wp // sw, q - 1)
            for pp in range(p0, p1 + 1):
                for qq in range(q0, q1 + 1):
                    dx[:, :, hh, ww] += dy[:, :, pp, qq] / _divisor(h, w, kh, kw, sh, sw, ph,
                                                                    pw, pp, qq, cip)
    expected = K.avg_pool2d_backward(dy, x_shape, (kh, kw), (sh, sw), (ph, pw), cip)
    assert_close(dx, expected, np.float64, "avg pool backward")


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_scan_replays_the_kernel(case):
    x_shape, (kh, kw), (sh, sw), (ph, pw) = case
    rng = np.random.default_rng(3)
    # Few distinct values: ties, where the first maximum must win.
    x = rng.integers(0, 3, x_shape).astype(np.float64)
    x.flat[::7] = np.nan
    n, c, h, w = x_shape
    y, idx = K.max_pool2d_forward(x, (kh, kw), (sh, sw), (ph, pw))
    p, q = y.shape[2:]
    for plane in range(n * c):
        src = x.reshape(n * c, h * w)[plane]
        for pp in range(p):
            for qq in range(q):
                hs, ws = pp * sh - ph, qq * sw - pw
                h0, w0 = max(hs, 0), max(ws, 0)
                best, best_i = -math.inf, h0 * w + w0
                for hh in range(h0, min(hs + kh, h)):
                    for ww in range(w0, min(ws + kw, w)):
                        v = src[hh * w + ww]
                        if v > best or v != v:
                            best, best_i = v, hh * w + ww
                got = y.reshape(n * c, p, q)[plane, pp, qq]
                assert (got == best) or (np.isnan(got) and np.isnan(best))
                assert idx.reshape(n * c, p, q)[plane, pp, qq] == best_i


# --------------------------------------------------------------------------- rnn, upsampling
# The same checks for the recurrent and upsampling kernels: refused before any launch.


@pytest.mark.parametrize("call", [
    lambda: K.lstm_cell_forward(_np(2, 8), _np(2, 2), backend="cuda"),
    lambda: K.gru_cell_backward(_np(2, 8), _np(2, 2), _np(2, 2), backend="cuda"),
    lambda: K.rnn_cell_forward(_np(2, 3), backend="cuda"),
    lambda: K.rnn_recurrence_forward("gru", _np(2, 3, 6), _np(6, 2), _np(3, 2),
                                     backend="cuda"),
    lambda: K.upsample_nearest2d_forward(_np(1, 2, 4, 4), (8, 8), backend="cuda"),
    lambda: K.upsample_bilinear2d_backward(_np(1, 2, 8, 8), (1, 2, 4, 4), backend="cuda"),
], ids=["lstm_cell", "gru_cell_bwd", "rnn_cell", "recurrence", "nearest", "bilinear_bwd"])
def test_numpy_arrays_to_the_cuda_rnn_and_upsample_kernels_are_refused(call):
    with pytest.raises(ValueError, match="needs CuPy arrays"):
        call()




def test_binding_checks_the_rnn_and_upsample_arguments(ext):
    with pytest.raises(ValueError, match="c_prev: required"):
        ext.lstm_cell_forward("float32", [8, 8, 0, 8, 8, 8], [10**6] * 6, 2, 3, 0, 0)
    with pytest.raises(TypeError, match="dtype: expected"):
        ext.gru_cell_forward("float16", [8] * 7, [10**6] * 7, 2, 3, 0, 0)
    # buffers smaller than the sizes need are refused (the extension never trusts them)
    with pytest.raises(ValueError, match="act: holds 23 elements, the sizes need 24"):
        ext.lstm_cell_forward("float32", [8] * 6, [24, 12, 6, 6, 6, 23], 2, 3, 0, 0)
    with pytest.raises(ValueError, match="counts"):
        ext.lstm_cell_forward("float32", [8] * 6, [1], 2, 3, 0, 0)
    # T*B*G*H in checked 64-bit arithmetic: sizes whose product overflows are refused
    n = 2**31 - 1
    with pytest.raises(ValueError, match="rnn_recurrence_forward"):
        ext.rnn_recurrence_forward("float32", 0, [8] * 7, [2**62] * 7, n, n, n, False, 0, 0)
    with pytest.raises(ValueError, match="mode"):
        ext.rnn_recurrence_forward("float32", 5, [8] * 7, [10**6] * 7, 2, 2, 4, False, 0, 0)


@pytest.mark.parametrize("call,exc,match", [
    (lambda a: a.lstm_cell_forward(F(2, 12), F(12), F(2, 3), F(2, 3), F(2, 3), F(2, 8)),
     ValueError, "act: expected"),
    (lambda a: a.lstm_cell_backward(F(2, 12), F(2, 3), F(2, 3), F(2, 3), F(2, 3), F(2, 12),
                                    F(2, 3), F(13), False), ValueError, "db: expected"),
    (lambda a: a.gru_cell_forward(F(2, 9), F(2, 9, dtype=np.float64), F(9), F(9), F(2, 3),
                                  F(2, 3), F(2, 12)), TypeError, "gh: expected dtype"),
    (lambda a: a.rnn_cell_backward(F(2, 3), F(2, 3), F(2, 3), F(4), False, False), ValueError,
     "db: expected"),
    (lambda a: a.rnn_recurrence_forward(0, F(3, 2, 12), F(12, 3), F(12), F(12), F(4, 2, 3), None,
                                        None, False), ValueError, "cbuf: required"),
    (lambda a: a.rnn_recurrence_forward(1, F(3, 2, 9), F(12, 4), F(12), F(12), F(4, 2, 4), None,
                                        F(3, 2, 16), False), ValueError, "xproj: expected"),
    (lambda a: a.rnn_recurrence_backward(2, F(3, 3), F(4, 2, 3), None, None,
                                         F(4, 2, 3, contiguous=False), None, F(3, 2, 3),
                                         F(3, 2, 3), F(3), F(3), False), ValueError,
     "C-contiguous"),
    (lambda a: a.upsample_nearest2d_forward(F(1, 2, 4, 4), F(1, 3, 8, 8), 0.0, 0.0), ValueError,
     "y: expected shape"),
    (lambda a: a.upsample_bilinear2d_backward(F(1, 2, 8, 8), F(1, 2, 4), True, 0.0, 0.0),
     ValueError, "4-D"),
])
def test_boundary_checks_rnn_and_upsample_arrays_before_any_launch(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_Boundary())
