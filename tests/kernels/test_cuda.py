"""CUDA kernels against the native CPU kernels, a float64 reference and, on the GPU,
cuBLAS (CuPy) and cuDNN (PyTorch, TF32 off), over the CPU tests' odd shapes.

Outputs are poisoned with NaN before each run: the backend-level functions get
preallocated NaN-filled outputs, and the public API runs after CuPy's memory pool was
filled with NaN, so an element a kernel forgets to write fails the test. Every test here
carries the ``gpu`` marker and skips with the reason where no CUDA backend is available.
"""

import importlib

import numpy as np
import pytest

import convnet as cn
from tests.helpers import assert_close
from tests.kernels import test_conv2d as conv_cases
from tests.kernels import test_pool2d as pool_cases
from tests.kernels.test_batchnorm import SHAPES as BN_SHAPES

pytestmark = pytest.mark.gpu
K = cn.kernels
DTYPES = (np.float32, np.float64)
DTYPE_IDS = ["float32", "float64"]


@pytest.fixture(scope="module")
def cp():
    info = cn.backends()["cuda"]
    if not info["available"]:
        pytest.skip(f"CUDA backend unavailable: {info['detail']}")
    import cupy

    return cupy


@pytest.fixture(scope="module")
def cu(cp):
    return importlib.import_module("convnet.kernels._cuda")


@pytest.fixture(scope="module")
def torch_cuda(cp):
    """PyTorch on the GPU with TF32 off (cuDNN/cuBLAS in true fp32), or None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch


def cpu_backend():
    return "native" if cn.backends()["native"]["available"] else "numba"


def nan(cp, shape, dtype):
    return cp.full(shape, np.nan, dtype=dtype)


def poison_pool(cp, nbytes=64 << 20):
    """Fill free blocks of CuPy's pool with NaN so fresh allocations start as garbage."""
    blocks = [cp.full((n // 8,), np.nan) for n in (nbytes, nbytes // 16, 1 << 16, 4096, 512)]
    del blocks


def host(a):
    """A host copy of a CuPy array (NumPy arrays, the emulated tests' stand-ins, as they are)."""
    return a if isinstance(a, np.ndarray) else a.get()


# --------------------------------------------------------------------------- GEMM

# The CPU tests' shapes, then ones that reach the 128x128 tiles and the 64x128 ones.
GEMM_SHAPES = [(1, 1, 1), (3, 5, 7), (17, 33, 65), (14, 32, 256), (15, 31, 257), (130, 70, 300),
               (300, 257, 513), (6, 784, 25), (64, 3, 1000), (1537, 1601, 77), (2048, 2048, 256),
               (50, 34000, 40)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m,n,k", GEMM_SHAPES)
def test_gemm_matches_cpu_and_cublas(cp, cu, m, n, k, trans_a, trans_b, dtype):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    ref = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    ag, bg = cp.asarray(a), cp.asarray(b)
    scale = max(1.0, np.sqrt(k) / 8)
    # beta == 0 must not read c (NaN there must not leak into the result).
    c = nan(cp, (m, n), dtype)
    cu.gemm(ag, bg, c, 1.5, 0.0, trans_a, trans_b)
    assert_close(host(c), 1.5 * ref, dtype, "alpha*ab", scale=scale)
    cpu = K.gemm(a, b, alpha=1.5, trans_a=trans_a, trans_b=trans_b, backend=cpu_backend())
    assert_close(host(c), cpu, dtype, "vs CPU", scale=2 * scale)
    cublas = cp.matmul(ag.T if trans_a else ag, bg.T if trans_b else bg) * 1.5
    assert_close(host(c), host(cublas), dtype, "vs cuBLAS", scale=2 * scale)
    # beta != 0 accumulates into c
    expected = -0.5 * ref + 0.25 * c0.astype(np.float64)
    c = cp.asarray(c0)
    cu.gemm(ag, bg, c, -0.5, 0.25, trans_a, trans_b)
    assert_close(host(c), expected, dtype, "alpha*ab + beta*c", scale=scale)


def test_gemm_public_api_returns_cupy(cp):
    poison_pool(cp)
    a = cp.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    b = cp.asarray(np.ones((4, 5), np.float32))
    c = K.gemm(a, b)
    assert type(c).__module__.startswith("cupy") and c.shape == (3, 5)
    np.testing.assert_array_equal(host(c), np.arange(12).reshape(3, 4).sum(1)[:, None]
                                  * np.ones((1, 5)))


def test_gemm_on_an_offset_unaligned_view(cp, cu):
    """A pointer that is not 16-byte aligned takes the element-wise loads."""
    rng = np.random.default_rng(5)
    base = cp.asarray(rng.standard_normal(1 + 37 * 41).astype(np.float32))
    a = base[1:].reshape(37, 41)  # contiguous, 4 bytes past an aligned address
    b = cp.asarray(rng.standard_normal((41, 29)).astype(np.float32))
    c = nan(cp, (37, 29), np.float32)
    cu.gemm(a, b, c, 1.0, 0.0, False, False)
    assert_close(host(c), host(a).astype(np.float64) @ host(b), np.float32, "unaligned")


# --------------------------------------------------------------------------- convolution

CONV_CASES = conv_cases.CASES + [
    ((32, 64, 28, 28), (128, 3, 3), 1, 1, 1),   # 128x128 tiles, split-K weight gradient
    ((8, 3, 64, 64), (32, 7, 7), 2, 3, 1),      # ResNet stem
    ((16, 32, 56, 56), (64, 3, 3), 1, 1, 1),    # 64 filters, large batch: 64x128 tiles
]
CONV_IDS = [f"x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-d{c[4]}".replace(" ", "") for c in CONV_CASES]


def _conv_args(x_shape, kshape, stride, padding, dilation):
    w_shape = (kshape[0], x_shape[1], kshape[1], kshape[2])
    return K._conv_geometry(x_shape, w_shape, stride, padding, dilation)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_matches_cpu_and_cudnn(cp, cu, torch_cuda, case, dtype):
    x_shape, kshape, stride, padding, dilation = case
    rng = np.random.default_rng(11)
    x, w, b = conv_cases.make(rng, x_shape, kshape, dtype)
    y_shape, args = _conv_args(x_shape, kshape, stride, padding, dilation)
    xg, wg, bg = cp.asarray(x), cp.asarray(w), cp.asarray(b)
    crs = w[0].size
    scale = max(2.0, np.sqrt(crs) / 8)

    y = nan(cp, y_shape, dtype)
    cu.conv2d_forward(xg, wg, bg, y, *args)
    y_cpu = K.conv2d_forward(x, w, b, stride, padding, dilation, backend=cpu_backend())
    y64 = K.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                           stride, padding, dilation)
    assert_close(host(y), y64, dtype, "forward vs float64", scale=scale)
    assert_close(host(y), y_cpu, dtype, "forward vs CPU", scale=2 * scale)

    dy = rng.standard_normal(y_shape).astype(dtype)
    dyg = cp.asarray(dy)
    dx = nan(cp, x_shape, dtype)
    cu.conv2d_backward_data(dyg, wg, dx, *args)
    dx64 = K.conv2d_backward_data(dy.astype(np.float64), w.astype(np.float64), x_shape, stride,
                                  padding, dilation)
    assert_close(host(dx), dx64, dtype, "backward data", scale=scale)

    dw = nan(cp, w.shape, dtype)
    cu.conv2d_backward_weight(dyg, xg, dw, *args)
    dw64 = K.conv2d_backward_weight(dy.astype(np.float64), x.astype(np.float64), w.shape,
                                    stride, padding, dilation)
    npq = y_shape[0] * y_shape[2] * y_shape[3]
    assert_close(host(dw), dw64, dtype, "backward weight", scale=max(4.0, np.sqrt(npq) / 8))

    db = nan(cp, (w.shape[0],), dtype)
    cu.conv2d_backward_bias(dyg, db)
    assert_close(host(db), dy.astype(np.float64).sum(axis=(0, 2, 3)), dtype, "backward bias",
                 scale=max(1.0, np.sqrt(npq) / 8))

    if torch_cuda is not None:
        torch = torch_cuda
        F = torch.nn.functional
        pads = conv_cases.explicit_pads(x_shape, kshape, stride, padding, dilation)
        xt = torch.tensor(x, device="cuda", requires_grad=True)
        wt = torch.tensor(w, device="cuda", requires_grad=True)
        bt = torch.tensor(b, device="cuda", requires_grad=True)
        t, bo, left, right = pads
        yt = F.conv2d(F.pad(xt, (left, right, t, bo)), wt, bt, stride=stride, dilation=dilation)
        yt.backward(torch.tensor(dy, device="cuda"))
        # cuDNN is an fp32 oracle with its own rounding (Winograd, FFT): a wider margin
        # here; the float64 comparisons above are the tight ones.
        assert_close(host(y), yt.detach().cpu().numpy(), dtype, "forward vs cuDNN",
                     scale=8 * scale)
        assert_close(host(dx), xt.grad.cpu().numpy(), dtype, "dx vs cuDNN", scale=8 * scale)
        assert_close(host(dw), wt.grad.cpu().numpy(), dtype, "dw vs cuDNN",
                     scale=max(8.0, np.sqrt(npq) / 4))


def test_conv2d_public_api_on_a_poisoned_pool(cp):
    rng = np.random.default_rng(3)
    x, w, b = conv_cases.make(rng, (3, 5, 9, 8), (7, 3, 2), np.float32)
    poison_pool(cp)
    y = K.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), 2, "same")
    assert type(y).__module__.startswith("cupy")
    expected = K.conv2d_forward(x.astype(np.float64), w.astype(np.float64),
                                b.astype(np.float64), 2, "same")
    assert_close(host(y), expected, np.float32, "forward")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    poison_pool(cp)
    dx = K.conv2d_backward_data(cp.asarray(dy), cp.asarray(w), x.shape, 2, "same")
    dw = K.conv2d_backward_weight(cp.asarray(dy), cp.asarray(x), w.shape, 2, "same")
    db = K.conv2d_backward_bias(cp.asarray(dy))
    d64 = dy.astype(np.float64)
    assert_close(host(dx), K.conv2d_backward_data(d64, w.astype(np.float64), x.shape, 2, "same"),
                 np.float32, "dx")
    assert_close(host(dw), K.conv2d_backward_weight(d64, x.astype(np.float64), w.shape, 2,
                                                    "same"), np.float32, "dw", scale=4)
    assert_close(host(db), d64.sum(axis=(0, 2, 3)), np.float32, "db")


def test_mixed_devices_are_refused(cp):
    x = cp.ones((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="different devices"):
        K.conv2d_forward(x, np.ones((3, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="runs on NumPy arrays"):
        K.conv2d_forward(x, cp.ones((3, 2, 3, 3), np.float32), backend="native")


# --------------------------------------------------------------------------- pooling

POOL_IDS = pool_cases.IDS


def _pool_args(x_shape, kernel, stride, padding):
    return K._pool_geometry(x_shape, kernel, stride, padding)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", pool_cases.CASES, ids=POOL_IDS)
def test_max_pool2d_matches_cpu_and_cudnn(cp, cu, torch_cuda, case, dtype):
    x_shape, kernel, stride, padding = case
    rng = np.random.default_rng(21)
    x = rng.standard_normal(x_shape).astype(dtype)
    y_shape, args = _pool_args(x_shape, kernel, stride, padding)
    xg = cp.asarray(x)
    y = nan(cp, y_shape, dtype)
    idx = cp.full(y_shape, -7, dtype=np.int64)
    cu.max_pool2d_forward(xg, y, idx, *args)
    y_cpu, idx_cpu = K.max_pool2d_forward(x, kernel, stride, padding, backend=cpu_backend())
    np.testing.assert_array_equal(host(y), y_cpu)
    np.testing.assert_array_equal(host(idx), idx_cpu)

    dy = rng.standard_normal(y_shape).astype(dtype)
    dx = nan(cp, x_shape, dtype)
    cu.max_pool2d_backward(cp.asarray(dy), idx, dx)
    dx_cpu = K.max_pool2d_backward(dy, idx_cpu, x_shape, backend=cpu_backend())
    assert_close(host(dx), dx_cpu, dtype, "max pool backward")

    if torch_cuda is not None:
        torch = torch_cuda
        kh, kw, sh, sw, ph, pw = args
        xt = torch.tensor(x, device="cuda")
        yt, it = torch.nn.functional.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw),
                                                return_indices=True)
        np.testing.assert_array_equal(host(y), yt.cpu().numpy())
        np.testing.assert_array_equal(host(idx), it.cpu().numpy())


def test_max_pool2d_ties_and_nan_follow_the_cpu_rules(cp, cu):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, (2, 3, 9, 9)).astype(np.float32)
    x.flat[::11] = np.nan
    y_shape, args = _pool_args(x.shape, 3, 2, 1)
    y = nan(cp, y_shape, np.float32)
    idx = cp.full(y_shape, -7, dtype=np.int64)
    cu.max_pool2d_forward(cp.asarray(x), y, idx, *args)
    y_cpu, idx_cpu = K.max_pool2d_forward(x, 3, 2, 1, backend=cpu_backend())
    np.testing.assert_array_equal(host(y), y_cpu)  # equal_nan by default
    np.testing.assert_array_equal(host(idx), idx_cpu)


def test_max_pool2d_backward_refuses_indices_outside_the_plane(cp):
    dy = cp.ones((1, 1, 2, 2), np.float32)
    idx = cp.asarray(np.array([0, 1, 2, 16]).reshape(1, 1, 2, 2))
    with pytest.raises(ValueError, match="outside the plane"):
        K.max_pool2d_backward(dy, idx, (1, 1, 4, 4))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", pool_cases.CASES, ids=POOL_IDS)
def test_avg_pool2d_matches_cpu_and_cudnn(cp, cu, torch_cuda, case, count_include_pad, dtype):
    x_shape, kernel, stride, padding = case
    rng = np.random.default_rng(22)
    x = rng.standard_normal(x_shape).astype(dtype)
    y_shape, args = _pool_args(x_shape, kernel, stride, padding)
    y = nan(cp, y_shape, dtype)
    cu.avg_pool2d_forward(cp.asarray(x), y, *args, count_include_pad)
    y_cpu = K.avg_pool2d_forward(x, kernel, stride, padding, count_include_pad,
                                 backend=cpu_backend())
    assert_close(host(y), y_cpu, dtype, "avg pool forward")
    dy = rng.standard_normal(y_shape).astype(dtype)
    dx = nan(cp, x_shape, dtype)
    cu.avg_pool2d_backward(cp.asarray(dy), dx, *args, count_include_pad)
    dx_cpu = K.avg_pool2d_backward(dy, x_shape, kernel, stride, padding, count_include_pad,
                                   backend=cpu_backend())
    assert_close(host(dx), dx_cpu, dtype, "avg pool backward")
    if torch_cuda is not None:
        torch = torch_cuda
        kh, kw, sh, sw, ph, pw = args
        xt = torch.tensor(x, device="cuda", requires_grad=True)
        yt = torch.nn.functional.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw),
                                            count_include_pad=count_include_pad)
        yt.backward(torch.tensor(dy, device="cuda"))
        assert_close(host(y), yt.detach().cpu().numpy(), dtype, "forward vs cuDNN")
        assert_close(host(dx), xt.grad.cpu().numpy(), dtype, "backward vs cuDNN")


# --------------------------------------------------------------------------- batch norm

BN_CASES = BN_SHAPES + [(64, 64, 56, 56), (2, 3, 1, 1), (4096, 10)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", BN_CASES)
def test_batch_norm_matches_cpu_and_cudnn(cp, cu, torch_cuda, shape, dtype):
    rng = np.random.default_rng(31)
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)  # offset mean: cancellation
    w = rng.standard_normal(c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    x3 = x.reshape(shape[0], c, -1)
    g = {k: cp.asarray(v) for k, v in dict(x=x3, w=w, b=b).items()}
    y = nan(cp, x3.shape, dtype)
    mean, var, invstd = (nan(cp, (c,), dtype) for _ in range(3))
    cu.batch_norm_forward_training(g["x"], g["w"], g["b"], y, mean, var, invstd, 1e-3)
    y_cpu, mean_cpu, invstd_cpu = K.batch_norm_forward_training(x, w, b, eps=1e-3,
                                                                backend=cpu_backend())
    axes = (0,) + tuple(range(2, len(shape)))
    x64 = x.astype(np.float64)
    assert_close(host(y).reshape(shape), y_cpu, dtype, "y vs CPU", scale=2)
    assert_close(host(mean), x64.mean(axis=axes), dtype, "mean")
    assert_close(host(var), x64.var(axis=axes), dtype, "var", scale=2)
    assert_close(host(invstd), 1 / np.sqrt(x64.var(axis=axes) + 1e-3), dtype, "invstd")

    dy = rng.standard_normal(shape).astype(dtype)
    dx = nan(cp, x3.shape, dtype)
    dw, db = nan(cp, (c,), dtype), nan(cp, (c,), dtype)
    cu.batch_norm_backward(cp.asarray(dy.reshape(x3.shape)), g["x"], g["w"], mean, invstd, dx,
                           dw, db)
    dx_cpu, dw_cpu, db_cpu = K.batch_norm_backward(dy, x, mean_cpu, invstd_cpu, w,
                                                   backend=cpu_backend())
    # Both devices add in double: only the float32 products and the final rounding differ.
    assert_close(host(dx).reshape(shape), dx_cpu, dtype, "dx vs CPU", scale=5)
    assert_close(host(dw), dw_cpu, dtype, "dweight vs CPU", scale=5)
    assert_close(host(db), db_cpu, dtype, "dbias vs CPU", scale=5)
    count = x3.shape[0] * x3.shape[2]
    sc = max(5.0, np.sqrt(count) / 16)  # cuDNN may add in float32

    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    y_inf = nan(cp, x3.shape, dtype)
    cu.batch_norm_forward_inference(g["x"], g["w"], g["b"], cp.asarray(rm), cp.asarray(rv),
                                    y_inf, 1e-3)
    y_inf_cpu = K.batch_norm_forward_inference(x, rm, rv, w, b, 1e-3, backend=cpu_backend())
    assert_close(host(y_inf).reshape(shape), y_inf_cpu, dtype, "inference vs CPU")

    if torch_cuda is not None:
        torch = torch_cuda
        xt = torch.tensor(x, device="cuda", requires_grad=True)
        wt = torch.tensor(w, device="cuda", requires_grad=True)
        bt = torch.tensor(b, device="cuda", requires_grad=True)
        yt = torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True, eps=1e-3)
        yt.backward(torch.tensor(dy, device="cuda"))
        assert_close(host(y).reshape(shape), yt.detach().cpu().numpy(), dtype, "y vs cuDNN",
                     scale=2)
        assert_close(host(dx).reshape(shape), xt.grad.cpu().numpy(), dtype, "dx vs cuDNN",
                     scale=sc)
        assert_close(host(dw), wt.grad.cpu().numpy(), dtype, "dw vs cuDNN", scale=sc)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_batch_norm_running_stats_update_as_on_the_cpu(cp, dtype):
    rng = np.random.default_rng(32)
    x = rng.standard_normal((6, 4, 3, 5)).astype(dtype) + 2
    rm, rv = rng.standard_normal(4).astype(dtype), rng.uniform(0.5, 2, 4).astype(dtype)
    rm_g, rv_g = cp.asarray(rm), cp.asarray(rv)
    poison_pool(cp)
    y, mean, invstd = K.batch_norm_forward_training(cp.asarray(x), None, None, rm_g, rv_g,
                                                    momentum=0.3, eps=1e-4)
    y_cpu, _, _ = K.batch_norm_forward_training(x, None, None, rm, rv, momentum=0.3, eps=1e-4,
                                                backend=cpu_backend())
    assert_close(host(y), y_cpu, dtype, "y")
    assert_close(host(rm_g), rm, dtype, "running_mean")
    assert_close(host(rv_g), rv, dtype, "running_var")


# --------------------------------------------------------------------------- activations

# The kinds with parameters of their own, then every other activation kernel of the manifest
# under its name, with each value of a small integer parameter (an approximation switch).
ACTS = [("relu", None), ("leaky_relu", 0.2), ("elu", 0.7), ("selu", None)] + [
    (kind, v) for kind, (params, _) in K.spec.ACTIVATION_KERNELS.items()
    if kind not in ("leaky_relu", "elu")
    for v in (range(int(params[0].lo), int(params[0].hi) + 1) if params else (None,))]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(1,), (17,), (3, 5, 7), (2, 3, 64, 65)])
@pytest.mark.parametrize("kind,alpha", ACTS, ids=[a[0] for a in ACTS])
def test_activations_match_cpu(cp, kind, alpha, shape, dtype):
    rng = np.random.default_rng(41)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.flat[0] = 30.0  # saturation, overflow-safe sigmoid/ELU
    poison_pool(cp)
    y = K.activation_forward(cp.asarray(x), kind, alpha)
    y_cpu = K.activation_forward(x, kind, alpha, backend=cpu_backend())
    assert_close(host(y), y_cpu, dtype, f"{kind} forward")
    saved = y_cpu if K.ACTIVATIONS[kind].saved == "y" else x
    dy = rng.standard_normal(shape).astype(dtype)
    poison_pool(cp)
    dx = K.activation_backward(cp.asarray(dy), cp.asarray(saved), kind, alpha)
    dx_cpu = K.activation_backward(dy, saved, kind, alpha, backend=cpu_backend())
    assert_close(host(dx), dx_cpu, dtype, f"{kind} backward")


# --------------------------------------------------------------------------- framework


def test_tensors_on_cuda_run_the_cuda_kernels(cp, cu, monkeypatch):
    import convnet.functional as F

    calls = []
    for name in ("conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight",
                 "max_pool2d_forward", "max_pool2d_backward", "batch_norm_forward_training",
                 "batch_norm_backward", "leaky_relu_forward", "leaky_relu_backward"):
        fn = getattr(cu, name)

        def spy(*args, _fn=fn, _name=name):
            calls.append(_name)
            return _fn(*args)

        monkeypatch.setattr(cu, name, spy)

    rng = np.random.default_rng(51)
    x = rng.standard_normal((4, 3, 12, 12)).astype(np.float32)
    w = (rng.standard_normal((8, 3, 3, 3)) / 5).astype(np.float32)
    results = {}
    for device in ("cpu", "cuda"):
        xt = cn.tensor(x, requires_grad=True, device=device)
        wt = cn.tensor(w, requires_grad=True, device=device)
        rm = cn.tensor(np.zeros(8, np.float32), device=device)
        rv = cn.tensor(np.ones(8, np.float32), device=device)
        h = F.conv2d(xt, wt, padding=1)
        h = F.batch_norm(h, rm.data, rv.data, training=True)
        h = F.max_pool2d(F.relu(h), 2)
        loss = (h * h).sum()
        loss.backward()
        results[device] = [loss.to("cpu").numpy(), xt.grad.to("cpu").numpy(),
                           wt.grad.to("cpu").numpy()]
    for got, expected, what in zip(results["cuda"], results["cpu"], ["loss", "dx", "dw"],
                                   strict=True):
        assert_close(got, expected, np.float32, what, scale=5)
    assert set(calls) >= {"conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight",
                          "max_pool2d_forward", "max_pool2d_backward",
                          "batch_norm_forward_training", "batch_norm_backward",
                          "leaky_relu_forward", "leaky_relu_backward"}, calls


# --------------------------------------------------------------------------- recurrent cells
#
# Each cell kernel against the native CPU one and the float64 reference, outputs NaN-poisoned
# (with accumulate, the accumulated outputs start from the same values on both sides).
# (B, H): B > 8 reaches several row lanes per column, H > 32 several column blocks.
RNN_CELL_SHAPES = [(1, 1), (3, 5), (11, 33), (64, 70)]
RNN_CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def _cell_case(kind, b, h, rng, dtype):
    """(forward inputs, forward outputs' shapes, forward flags, backward maker)."""
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    if kind == "lstm":
        return (r(b, 4 * h) * 2, r(4 * h), r(b, h)), [(b, h), (b, h), (b, 4 * h)], ()
    if kind == "gru":
        return (r(b, 3 * h) * 2, r(b, 3 * h) * 2, r(3 * h), r(3 * h), r(b, h)), \
            [(b, h), (b, 4 * h)], ()
    return (r(b, h) * 2, r(h)), [(b, h)], (kind == "rnn_relu",)


def _run_cell(cp, impl, name, ins, outs_init, flags):
    """impl.name(*ins, *outs, *flags) on device arrays (cp) or host ones (cp None)."""
    if cp is None:
        outs = [o.copy() for o in outs_init]
        getattr(impl, name)(*ins, *outs, *flags)
        return outs
    outs = [cp.asarray(o) for o in outs_init]
    getattr(impl, name)(*[cp.asarray(a) for a in ins], *outs, *flags)
    return [host(o) for o in outs]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("b,h", RNN_CELL_SHAPES)
@pytest.mark.parametrize("kind", RNN_CELLS)
def test_rnn_cells_match_cpu(cp, cu, kind, b, h, accumulate, dtype):
    from convnet.kernels import _registry
    from convnet.kernels import reference as ref

    cpu = _registry.require(cpu_backend())
    rng = np.random.default_rng(b * 31 + h)
    ins, shapes, flags = _cell_case(kind, b, h, rng, dtype)
    cell = "rnn" if kind.startswith("rnn") else kind
    poisoned = [np.full(s, np.nan, dtype) for s in shapes]
    got = _run_cell(cp, cu, f"{cell}_cell_forward", ins, poisoned, flags)
    expected = _run_cell(None, cpu, f"{cell}_cell_forward", ins, poisoned, flags)
    ref_out = [np.empty(s) for s in shapes]
    getattr(ref, f"{cell}_cell_forward")(*[a.astype(np.float64) for a in ins], *ref_out, *flags)
    for g, e, r_, i in zip(got, expected, ref_out, range(len(shapes)), strict=True):
        assert_close(g, e, dtype, f"{kind} forward out {i} vs CPU")
        assert_close(g, r_, dtype, f"{kind} forward out {i} vs float64")

    # backward from the forward's saved values (the CPU's, so both sides read the same)
    dh = rng.standard_normal((b, h)).astype(dtype)
    if kind == "lstm":
        h_new, c_new, act = expected
        dc = rng.standard_normal((b, h)).astype(dtype)
        bins = (act, ins[2], c_new, dh, dc)
        bshapes = [(b, 4 * h), (b, h), (4 * h,)]
        acc_slots = {2}
    elif kind == "gru":
        bins = (expected[1], ins[4], dh)
        bshapes = [(b, 3 * h), (b, 3 * h), (b, h), (3 * h,), (3 * h,)]
        acc_slots = {2, 3, 4}
    else:
        bins = (expected[0], dh)
        bshapes = [(b, h), (h,)]
        acc_slots = {1}
    init = [rng.standard_normal(s).astype(dtype) if accumulate and i in acc_slots
            else np.full(s, np.nan, dtype) for i, s in enumerate(bshapes)]
    bflags = (accumulate,) if cell != "rnn" else (kind == "rnn_relu", accumulate)
    got = _run_cell(cp, cu, f"{cell}_cell_backward", bins, init, bflags)
    expected = _run_cell(None, cpu, f"{cell}_cell_backward", bins, init, bflags)
    ref_out = [a.astype(np.float64) for a in init]
    getattr(ref, f"{cell}_cell_backward")(*[a.astype(np.float64) for a in bins], *ref_out,
                                          *bflags)
    for i, (g, e, r_) in enumerate(zip(got, expected, ref_out, strict=True)):
        scale = 2.0 + np.sqrt(b) if bshapes[i][0] != b else 2.0  # the batch sums
        assert_close(g, e, dtype, f"{kind} backward out {i} vs CPU", scale=scale)
        assert_close(g, r_, dtype, f"{kind} backward out {i} vs float64", scale=scale)


def test_lstm_cell_in_place_as_the_cpu(cp, cu):
    """act may be gates (forward) and dc_prev may be dc (backward), as on the CPU."""
    rng = np.random.default_rng(3)
    b, h = 5, 37
    gates = rng.standard_normal((b, 4 * h)).astype(np.float32)
    bias = rng.standard_normal(4 * h).astype(np.float32)
    c_prev = rng.standard_normal((b, h)).astype(np.float32)
    hy, cy, act = K.lstm_cell_forward(gates, c_prev, bias, backend=cpu_backend())
    g = cp.asarray(gates)
    h_d, c_d = nan(cp, (b, h), np.float32), nan(cp, (b, h), np.float32)
    cu.lstm_cell_forward(g, cp.asarray(bias), cp.asarray(c_prev), h_d, c_d, g)
    assert_close(host(g), act, np.float32, "act written over gates")
    assert_close(host(h_d), hy, np.float32, "h")
    dh = rng.standard_normal((b, h)).astype(np.float32)
    dc = rng.standard_normal((b, h)).astype(np.float32)
    dg_cpu, dcp_cpu, db_cpu = K.lstm_cell_backward(act, c_prev, cy, dh, dc, backend=cpu_backend())
    dc_d = cp.asarray(dc)
    dg, db = nan(cp, (b, 4 * h), np.float32), nan(cp, (4 * h,), np.float32)
    cu.lstm_cell_backward(cp.asarray(act), cp.asarray(c_prev), cp.asarray(cy), cp.asarray(dh),
                          dc_d, dg, dc_d, db, False)
    assert_close(host(dc_d), dcp_cpu, np.float32, "dc_prev written over dc")
    assert_close(host(dg), dg_cpu, np.float32, "dgates")
    assert_close(host(db), db_cpu, np.float32, "db", scale=4)


# --------------------------------------------------------------------------- recurrence

# (T, B, H): one step, odd sizes, several column blocks, and a batch over the row lanes.
RECURRENCE_SHAPES = [(1, 1, 1), (5, 3, 18), (4, 11, 33), (3, 2, 65)]


def _recurrence_inputs(mode, t_len, b, h, dtype, seed):
    g = K.RNN_GATES[mode]
    r = np.random.default_rng(seed)
    f = lambda s, k=1.0: (r.standard_normal(s) * k).astype(dtype)  # noqa: E731
    return dict(xproj=f((t_len, b, g * h)), w_hh=f((g * h, h), 0.3), b_ih=f(g * h),
                b_hh=f(g * h), h0=f((b, h)), c0=f((b, h)), dh_out=f((t_len, b, h)),
                dh_n=f((b, h)), dc_n=f((b, h)))


def _recurrence(xp, impl, mode, d, reverse, dtype):
    """Forward then backward on one backend's arrays (xp: numpy or the device's module);
    returns every buffer both write, on the host."""
    m = K.RNN_MODES.index(mode)
    t_len, b = d["xproj"].shape[:2]
    h = d["h0"].shape[1]
    g = K.RNN_GATES[mode]
    dev = {k: xp.asarray(v) for k, v in d.items()}
    first, last = (t_len, 0) if reverse else (0, t_len)
    hbuf = xp.full((t_len + 1, b, h), np.nan, dtype=dtype)
    hbuf[first] = dev["h0"]
    cbuf = act = None
    if mode == "lstm":
        cbuf = xp.full((t_len + 1, b, h), np.nan, dtype=dtype)
        cbuf[first] = dev["c0"]
    if mode == "gru":
        act = xp.full((t_len, b, 4 * h), np.nan, dtype=dtype)
    xproj = dev["xproj"].copy()
    impl.rnn_recurrence_forward(m, xproj, dev["w_hh"], dev["b_ih"], dev["b_hh"], hbuf, cbuf,
                                act, reverse)
    saved = xproj if mode == "lstm" else act
    dH = xp.full((t_len + 1, b, h), np.nan, dtype=dtype)
    if reverse:
        dH[:t_len] = dev["dh_out"]
    else:
        dH[1:] = dev["dh_out"]
    dH[first] = 0
    dH[last] += dev["dh_n"]
    dc = dev["dc_n"].copy() if mode == "lstm" else None
    dgx = xp.full((t_len, b, g * h), np.nan, dtype=dtype)
    dgh = xp.full((t_len, b, g * h), np.nan, dtype=dtype) if mode == "gru" else dgx
    dbx = xp.full((g * h,), np.nan, dtype=dtype)
    dbh = xp.full((g * h,), np.nan, dtype=dtype) if mode == "gru" else dbx
    impl.rnn_recurrence_backward(m, dev["w_hh"], hbuf, cbuf, saved, dH, dc, dgx, dgh, dbx, dbh,
                                 reverse)
    out = {"hbuf": hbuf, "dH": dH, "dgx": dgx, "dbx": dbx}
    if mode == "lstm":
        out.update(cbuf=cbuf, act=xproj, dc=dc)
    if mode == "gru":
        out.update(act=act, dgh=dgh, dbh=dbh)
    return {k: host(v) for k, v in out.items()}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("t_len,b,h", RECURRENCE_SHAPES)
@pytest.mark.parametrize("mode", RNN_CELLS)
def test_rnn_recurrence_matches_cpu(cp, cu, mode, t_len, b, h, reverse, dtype):
    from convnet.kernels import _registry
    from convnet.kernels import reference as ref

    d = _recurrence_inputs(mode, t_len, b, h, dtype, t_len * 100 + b * 10 + h)
    got = _recurrence(cp, cu, mode, d, reverse, dtype)
    cpu = _recurrence(np, _registry.require(cpu_backend()), mode, d, reverse, dtype)
    d64 = {k: v.astype(np.float64) for k, v in d.items()}
    exact = _recurrence(np, ref, mode, d64, reverse, np.float64)
    scale = 4.0 * t_len + np.sqrt(b)
    for name, value in got.items():
        assert not np.isnan(value).any(), f"{mode} {name}: unwritten (NaN) elements"
        assert_close(value, cpu[name], dtype, f"{mode} {name} vs CPU", scale=scale)
        assert_close(value, exact[name], dtype, f"{mode} {name} vs float64", scale=scale)


def test_rnn_recurrence_refuses_bad_buffers(cp, cu):
    x = cp.zeros((3, 2, 12), dtype=np.float32)
    w = cp.zeros((12, 4), dtype=np.float32)
    b = cp.zeros(12, dtype=np.float32)
    hbuf = cp.zeros((4, 2, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="act"):
        cu.rnn_recurrence_forward(1, x, w, b, b, hbuf, None, None, False)
    with pytest.raises(ValueError, match="xproj"):
        cu.rnn_recurrence_forward(0, x, w, b, b, hbuf, hbuf, None, False)
    with pytest.raises(ValueError, match="mode"):
        cu.rnn_recurrence_forward(4, x, w, b, b, hbuf, None, None, False)
    dgx = cp.zeros((3, 2, 12), dtype=np.float32)
    with pytest.raises(ValueError, match="dgh"):
        cu.rnn_recurrence_backward(1, w, hbuf, None, cp.zeros((3, 2, 16), np.float32),
                                   cp.zeros((4, 2, 4), np.float32), None, dgx, dgx, b, b, False)


# --------------------------------------------------------------------------- upsampling

# (x shape, output size, scale factors or None): up, down, identity, exact 2x, odd factors.
UPSAMPLE_CASES = [((2, 3, 5, 7), (11, 13), None), ((1, 2, 4, 4), (8, 8), (2.0, 2.0)),
                  ((2, 2, 6, 9), (4, 5), None), ((1, 3, 3, 4), (7, 6), (2.5, 1.7)),
                  ((1, 1, 1, 1), (3, 2), None), ((2, 1, 5, 5), (5, 5), None),
                  ((1, 2, 7, 3), (1, 9), None)]
UPSAMPLE_IDS = [f"x{c[0]}-to{c[1]}-s{c[2]}".replace(" ", "") for c in UPSAMPLE_CASES]
UPSAMPLE_MODES = [("nearest", None), ("bilinear", False), ("bilinear", True)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mode,corners", UPSAMPLE_MODES, ids=["nearest", "bilinear",
                                                              "bilinear-corners"])
@pytest.mark.parametrize("case", UPSAMPLE_CASES, ids=UPSAMPLE_IDS)
def test_upsample_matches_cpu_and_torch(cp, cu, torch_cuda, case, mode, corners, dtype):
    from convnet.kernels import reference as ref

    x_shape, size, scales = case
    rng = np.random.default_rng(sum(x_shape) + sum(size))
    x = rng.standard_normal(x_shape).astype(dtype)
    y_shape = (*x_shape[:2], *size)
    dy = rng.standard_normal(y_shape).astype(dtype)
    sh, sw = scales if scales else (0.0, 0.0)
    extra = () if mode == "nearest" else (corners,)
    y = nan(cp, y_shape, dtype)
    getattr(cu, f"upsample_{mode}2d_forward")(cp.asarray(x), y, *extra, sh, sw)
    dx = nan(cp, x_shape, dtype)
    getattr(cu, f"upsample_{mode}2d_backward")(cp.asarray(dy), dx, *extra, sh, sw)
    fwd = getattr(K, f"upsample_{mode}2d_forward")
    bwd = getattr(K, f"upsample_{mode}2d_backward")
    y_cpu = fwd(x, size, *extra, scales=scales, backend=cpu_backend())
    dx_cpu = bwd(dy, x_shape, *extra, scales=scales, backend=cpu_backend())
    y_ref, dx_ref = np.empty(y_shape), np.empty(x_shape)
    getattr(ref, f"upsample_{mode}2d_forward")(x.astype(np.float64), y_ref, *extra, sh, sw)
    getattr(ref, f"upsample_{mode}2d_backward")(dy.astype(np.float64), dx_ref, *extra, sh, sw)
    assert_close(host(y), y_cpu, dtype, "forward vs CPU")
    assert_close(host(y), y_ref, dtype, "forward vs float64")
    assert_close(host(dx), dx_cpu, dtype, "backward vs CPU", scale=4)
    assert_close(host(dx), dx_ref, dtype, "backward vs float64", scale=4)
    if torch_cuda is not None:
        t = torch_cuda
        xt = t.tensor(x, device="cuda", requires_grad=True)
        kw = {"size": size} if scales is None else {"scale_factor": scales}
        yt = t.nn.functional.interpolate(xt, mode=mode, align_corners=corners, **kw)
        yt.backward(t.tensor(dy, device="cuda"))
        assert_close(host(y), yt.detach().cpu().numpy(), dtype, "forward vs torch")
        assert_close(host(dx), xt.grad.cpu().numpy(), dtype, "backward vs torch", scale=4)


def test_upsample_public_api_on_a_poisoned_pool(cp):
    poison_pool(cp)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    y = K.upsample_bilinear2d_forward(cp.asarray(x), (17, 23))
    assert type(y).__module__.startswith("cupy")
    assert_close(host(y), K.upsample_bilinear2d_forward(x, (17, 23), backend=cpu_backend()),
                 np.float32, "bilinear")
    dx = K.upsample_nearest2d_backward(cp.asarray(y), x.shape)
    assert_close(host(dx), K.upsample_nearest2d_backward(host(y), x.shape,
                                                         backend=cpu_backend()),
                 np.float32, "nearest backward", scale=4)


# --------------------------------------------------------------------------- layers vs torch


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_layers_on_cuda_match_torch_on_cuda(cp, torch_cuda, kind, bidirectional):
    """torch.nn.LSTM/GRU/RNN (cuDNN) and convnet's layers on device="cuda" with copied
    weights: outputs, final states and every gradient, in float32."""
    if torch_cuda is None:
        pytest.skip("PyTorch with CUDA unavailable")
    t = torch_cuda
    seq, batch, inp, hidden, layers = 7, 5, 6, 33, 2
    t.manual_seed(0)
    tm = getattr(t.nn, kind)(inp, hidden, layers, bidirectional=bidirectional).cuda()
    cm = getattr(cn.nn, kind)(inp, hidden, layers, bidirectional=bidirectional)
    cm.load_state_dict({k: v.detach().cpu().numpy() for k, v in tm.state_dict().items()})
    cm.to(device="cuda")
    rng = np.random.default_rng(4)
    d = 2 if bidirectional else 1
    x = rng.standard_normal((seq, batch, inp)).astype(np.float32)
    h0 = rng.standard_normal((layers * d, batch, hidden)).astype(np.float32)
    c0 = rng.standard_normal((layers * d, batch, hidden)).astype(np.float32)
    lstm = kind == "LSTM"
    xt, h0t, c0t = (t.tensor(a, device="cuda", requires_grad=True) for a in (x, h0, c0))
    xc, h0c, c0c = (cn.tensor(a, device="cuda", requires_grad=True) for a in (x, h0, c0))
    yt, st = tm(xt, (h0t, c0t) if lstm else h0t)
    yc, sc = cm(xc, (h0c, c0c) if lstm else h0c)
    states_t = list(st) if lstm else [st]
    states_c = list(sc) if lstm else [sc]
    scale = 4.0 * seq * layers
    assert_close(host(yc._data), yt.detach().cpu().numpy(), np.float32, "output", scale)
    for a, b_ in zip(states_c, states_t, strict=True):
        assert_close(host(a._data), b_.detach().cpu().numpy(), np.float32, "state", scale)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    ds = [rng.standard_normal(tuple(s.shape)).astype(np.float32) for s in states_t]
    loss_t = (yt * t.tensor(dy, device="cuda")).sum() + sum(
        (s * t.tensor(g, device="cuda")).sum() for s, g in zip(states_t, ds, strict=True))
    loss_c = (yc * cn.tensor(dy, device="cuda")).sum()
    for s, g in zip(states_c, ds, strict=True):
        loss_c = loss_c + (s * cn.tensor(g, device="cuda")).sum()
    loss_t.backward()
    loss_c.backward()
    assert_close(host(xc.grad._data), xt.grad.cpu().numpy(), np.float32, "d input", scale)
    assert_close(host(h0c.grad._data), h0t.grad.cpu().numpy(), np.float32, "d h0", scale)
    if lstm:
        assert_close(host(c0c.grad._data), c0t.grad.cpu().numpy(), np.float32, "d c0", scale)
    params_t = dict(tm.named_parameters())
    for name, p in cm.named_parameters():
        assert_close(host(p.grad._data), params_t[name].grad.cpu().numpy(), np.float32,
                     f"d {name}", scale)


def test_upsample_layer_on_cuda_matches_torch_on_cuda(cp, torch_cuda):
    if torch_cuda is None:
        pytest.skip("PyTorch with CUDA unavailable")
    t = torch_cuda
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    for mode, corners in UPSAMPLE_MODES:
        kw = {} if mode == "nearest" else {"align_corners": corners}
        xc = cn.tensor(x, device="cuda", requires_grad=True)
        yc = cn.nn.Upsample(scale_factor=2.5, mode=mode, **kw)(xc)
        xt = t.tensor(x, device="cuda", requires_grad=True)
        yt = t.nn.Upsample(scale_factor=2.5, mode=mode, **kw)(xt)
        assert_close(host(yc._data), yt.detach().cpu().numpy(), np.float32, f"{mode} forward")
        (yc * yc).sum().backward()
        (yt * yt).sum().backward()
        assert_close(host(xc.grad._data), xt.grad.cpu().numpy(), np.float32, f"{mode} grad",
                     scale=4)
