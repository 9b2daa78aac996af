"""Winograd F(4x4, 3x3) convolution (native backend) against the float64 reference and PyTorch.

Both algorithms run on the same shapes: ``conv_algorithm("winograd")`` forces Winograd
wherever it applies (3x3, stride 1, dilation 1: forward, data and weight gradients),
``"gemm"``
keeps the implicit-GEMM/direct paths. Measured float32 error of Winograd (largest
|error| / largest |output|, against the float64 reference): 1e-6 to 4e-6 forward and data
gradient at 16-64 channels, 3e-6 to 7e-6 at 128-260 channels, 1e-6 to 3e-6 for the weight
gradient (the tolerance is 2e-5); the
implicit GEMM is at 2e-7 to 5e-7 on the same shapes, so Winograd loses about one decimal
digit, 10-25x the direct path's error (test_float32_error_against_direct_path checks the
bound and prints both; float64 Winograd is at 2e-15 to 7e-15).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import convnet as cn
from convnet.kernels import reference as ref
from tests.helpers import assert_close, finite_difference, torch_or_skip
from tests.kernels.test_conv2d import explicit_pads

K = cn.kernels

# (N, C, H, W), filters, padding: partial tiles, odd sizes, channel counts off the vector
# width, padding 0/1/2/3/"same"/asymmetric, depth past one GEMM block (C > 256) and rows
# past one block of A (K > 192).
CASES = [
    ((1, 1, 5, 5), 1, 0),
    ((2, 17, 5, 5), 33, 1),
    ((3, 20, 13, 7), 16, 2),
    ((1, 16, 9, 11), 20, 0),
    ((2, 32, 14, 14), 32, 1),
    ((1, 3, 4, 70), 5, 1),
    ((2, 16, 8, 8), 16, 3),
    ((1, 16, 1, 1), 16, 1),
    ((2, 19, 6, 6), 7, "same"),
    ((1, 8, 3, 3), 4, "valid"),
    ((2, 24, 10, 9), 40, (1, 0)),
    ((2, 12, 7, 10), 9, ((0, 2), (1, 0))),
    ((2, 48, 17, 19), 24, 1),
    ((1, 260, 6, 6), 9, 1),
    ((2, 8, 12, 12), 200, 1),
    ((4, 64, 14, 14), 64, 1),
]
IDS = [f"x{c[0]}-k{c[1]}-p{c[2]}".replace(" ", "") for c in CASES]
DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def _native():
    if not cn.backends()["native"]["available"]:
        pytest.skip("native backend unavailable")
    previous = K.get_conv_algorithm()
    yield
    K.set_conv_algorithm(previous)


def make(rng, x_shape, k, dtype):
    c = x_shape[1]
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((k, c, 3, 3)) / np.sqrt(9 * c)
    b = rng.standard_normal(k)
    return x.astype(dtype), w.astype(dtype), b.astype(dtype)


def reference(x, w, b, dy, padding):
    """float64 forward, data and weight gradients for any padding, from the zero-padded
    input."""
    top, bottom, left, right = explicit_pads(x.shape, (w.shape[0], 3, 3), 1, padding, 1)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    y = ref.conv2d_forward_ref(xp, w, b)
    if dy is None:
        return y, None, None
    dxp = ref.conv2d_backward_data_ref(dy, w, xp.shape[2:])
    dw = ref.conv2d_backward_weight_ref(dy, xp, (3, 3))
    return y, dxp[:, :, top:top + x.shape[2], left:left + x.shape[3]], dw


def run(algorithm, x, w, b, dy, padding):
    with K.conv_algorithm(algorithm):
        y = K.conv2d_forward(x, w, b, 1, padding, backend="native")
        dx = K.conv2d_backward_data(dy, w, x.shape, 1, padding, backend="native")
        dw = K.conv2d_backward_weight(dy, x, w.shape, 1, padding, backend="native")
    return y, dx, dw


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("algorithm", ["winograd", "gemm"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_reference(case, algorithm, dtype, rng):
    x_shape, k, padding = case
    x, w, b = make(rng, x_shape, k, dtype)
    y_ref = reference(x, w, b, None, padding)[0]
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    y_ref, dx_ref, dw_ref = reference(x, w, b, dy, padding)
    y, dx, dw = run(algorithm, x, w, b, dy, padding)
    assert y.dtype == dtype and dx.dtype == dtype and dw.dtype == dtype
    assert_close(y, y_ref, dtype, f"{algorithm} forward")
    assert_close(dx, dx_ref, dtype, f"{algorithm} data gradient")
    assert_close(dw, dw_ref, dtype, f"{algorithm} weight gradient")


@pytest.mark.parametrize("case", CASES[1:6] + CASES[10:12], ids=IDS[1:6] + IDS[10:12])
def test_matches_torch(case, rng):
    torch = torch_or_skip()
    x_shape, k, padding = case
    x, w, b = make(rng, x_shape, k, np.float32)
    top, bottom, left, right = explicit_pads(x.shape, (k, 3, 3), 1, padding, 1)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    wt = torch.tensor(w.astype(np.float64), requires_grad=True)
    yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (left, right, top, bottom)),
                                    wt, torch.tensor(b.astype(np.float64)))
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(dy.astype(np.float64)))
    y, dx, dw = run("winograd", x, w, b, dy, padding)
    assert_close(y, yt.detach().numpy(), np.float32, "forward vs torch")
    assert_close(dx, xt.grad.numpy(), np.float32, "data gradient vs torch")
    assert_close(dw, wt.grad.numpy(), np.float32, "weight gradient vs torch")


@pytest.mark.parametrize("case", CASES[1:5] + CASES[12:13], ids=IDS[1:5] + IDS[12:13])
def test_winograd_really_runs(case, rng):
    """The setting changes the arithmetic: float32 results differ in their rounding."""
    x_shape, k, padding = case
    x, w, b = make(rng, x_shape, k, np.float32)
    dy = rng.standard_normal(K.conv2d_output_shape(x.shape, w.shape, 1, padding))
    dy = dy.astype(np.float32)
    for ours, theirs in zip(run("winograd", x, w, b, dy, padding),
                            run("gemm", x, w, b, dy, padding)):
        assert not np.array_equal(ours, theirs)


def test_auto_rule_is_deterministic(rng):
    """"auto" follows the measured rule: Winograd on large planes with 64 channels and on
    128 channels, the flat or GEMM paths on a 3-channel input, on 16 channels and on 64
    channels at 14x14; the weight gradient keeps the flat path below 128 channels on planes
    of 12 or more. Each output equals the forced algorithm's bit for bit."""
    cases = [((4, 128, 16, 16), 128, ("winograd", "winograd", "winograd")),
             ((4, 64, 16, 16), 64, ("winograd", "winograd", "gemm")),
             ((8, 64, 14, 14), 64, ("gemm", "gemm", "gemm")),
             ((2, 3, 16, 16), 64, ("gemm", "gemm", "gemm")),
             ((1, 16, 8, 8), 16, ("gemm", "gemm", "gemm")),
             ((4, 16, 16, 16), 64, ("gemm", "gemm", "gemm"))]
    for x_shape, k, expect in cases:
        x, w, b = make(rng, x_shape, k, np.float32)
        dy = rng.standard_normal((x_shape[0], k) + x_shape[2:]).astype(np.float32)
        auto = run("auto", x, w, b, dy, 1)
        forced = {name: run(name, x, w, b, dy, 1) for name in set(expect)}
        for i, name in enumerate(expect):
            assert np.array_equal(auto[i], forced[name][i]), (x_shape, k, i, name)
        if len(forced) == 2:  # the two algorithms really differ on this shape
            assert not np.array_equal(forced["winograd"][0], forced["gemm"][0])


def test_float32_error_against_direct_path(rng):
    """Winograd's float32 error stays within the tolerance and within 60x the direct path's
    (the flat weight gradient sums in 16 vector lanes: 7e-8 at 128 channels, Winograd 3e-6)."""
    for x_shape, k in [((4, 64, 14, 14), 64), ((2, 128, 12, 12), 128), ((1, 260, 6, 6), 32)]:
        x, w, b = make(rng, x_shape, k, np.float32)
        dy = rng.standard_normal((x_shape[0], k) + x_shape[2:]).astype(np.float32)
        expected = reference(x, w, b, dy, 1)
        errors = {}
        for algorithm in ("winograd", "gemm"):
            errors[algorithm] = [assert_close(a, e, np.float32, f"{algorithm} {what}")
                                 for a, e, what in zip(run(algorithm, x, w, b, dy, 1), expected,
                                                       ("forward", "dx", "dw"))]
        print(x_shape, k, "float32 error winograd", errors["winograd"], "gemm", errors["gemm"])
        for e_w, e_g in zip(errors["winograd"], errors["gemm"]):
            assert e_w <= max(60 * e_g, 1e-6)


@pytest.mark.parametrize("case", [CASES[2], CASES[10], CASES[11], CASES[6]],
                         ids=[IDS[2], IDS[10], IDS[11], IDS[6]])
def test_gradients_finite_difference(case, rng):
    """float64, Winograd forced: the gradients are the derivatives of the forward pass."""
    x_shape, k, padding = case
    x, w, b = make(rng, x_shape, k, np.float64)
    with K.conv_algorithm("winograd"):
        y = K.conv2d_forward(x, w, b, 1, padding, backend="native")
        dy = rng.standard_normal(y.shape)

        def loss_x(xv):
            return float(np.sum(K.conv2d_forward(xv, w, b, 1, padding, backend="native") * dy))

        def loss_w(wv):
            return float(np.sum(K.conv2d_forward(x, wv, b, 1, padding, backend="native") * dy))

        vx, vw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
        dx = K.conv2d_backward_data(dy, w, x.shape, 1, padding, backend="native")
        dw = K.conv2d_backward_weight(dy, x, w.shape, 1, padding, backend="native")
        assert np.sum(dx * vx) == pytest.approx(finite_difference(loss_x, x, vx), rel=1e-7)
        assert np.sum(dw * vw) == pytest.approx(finite_difference(loss_w, w, vw), rel=1e-7)


def test_functional_conv2d_uses_it_with_exact_gradients(rng):
    """Through autograd (F.conv2d), Winograd forced, against PyTorch in float64."""
    torch = torch_or_skip()
    x, w, b = make(rng, (2, 20, 9, 10), 24, np.float64)
    with K.conv_algorithm("winograd"):
        xc, wc, bc = (cn.tensor(a, requires_grad=True) for a in (x, w, b))
        y = cn.functional.conv2d(xc, wc, bc, padding=1)
        dy = rng.standard_normal(y.shape)
        y.backward(cn.tensor(dy))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=1)
    yt.backward(torch.tensor(dy))
    assert_close(y.numpy(), yt.detach().numpy(), np.float64, "forward")
    assert_close(xc.grad.numpy(), xt.grad.numpy(), np.float64, "dx")
    assert_close(wc.grad.numpy(), wt.grad.numpy(), np.float64, "dw")


def test_bad_algorithm_name():
    with pytest.raises(ValueError, match="algorithm"):
        K.set_conv_algorithm("fast")
    assert K.get_conv_algorithm() in ("auto", "winograd", "gemm")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_two_threads_match_reference(dtype, rng):
    """Several blocks per thread: the workers use their own buffers and the shared filters."""
    x, w, b = make(rng, (16, 32, 14, 13), 40, dtype)
    dy = rng.standard_normal((16, 40, 14, 13)).astype(dtype)
    expected = reference(x, w, b, dy, 1)
    previous = cn.get_num_threads()
    cn.set_num_threads(2)
    try:
        first = run("winograd", x, w, b, dy, 1)
        again = run("winograd", x, w, b, dy, 1)
    finally:
        cn.set_num_threads(previous)
    for ours, e, what in zip(first, expected, ("forward", "dx", "dw")):
        assert_close(ours, e, dtype, f"2 threads {what}")
    for a, c in zip(first, again):  # fixed per-thread shares: the same sums every call
        assert np.array_equal(a, c)


def test_environment_variable_sets_the_initial_algorithm():
    code = "import convnet as cn; print(cn.kernels.get_conv_algorithm())"
    for value, expect in (("winograd", "winograd"), ("fast", "auto")):
        env = dict(os.environ, CONVNET_CONV_ALGO=value)
        out = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expect
        assert ("CONVNET_CONV_ALGO='fast'" in out.stderr) == (value == "fast")
