import numpy as np
import pytest

import convnet as cn
from tests.helpers import assert_close, finite_difference, to_torch, torch_or_skip

K = cn.kernels

# x shape, kernel, stride, padding
CASES = [
    ((1, 1, 4, 4), 2, None, 0),
    ((2, 3, 7, 9), 3, 2, 1),           # overlapping windows with padding (AlexNet style)
    ((2, 5, 8, 6), (2, 3), (1, 2), (1, 1)),
    ((3, 2, 9, 9), 2, 3, 0),           # stride larger than the kernel
    ((1, 4, 5, 5), 5, 1, 2),           # padding = half the kernel
    ((2, 6, 28, 28), 2, 2, 0),         # LeNet
    ((1, 1, 1, 1), 1, 1, 0),
    ((2, 3, 11, 5), (3, 1), (2, 1), (1, 0)),
]
IDS = [f"x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}".replace(" ", "") for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_pool2d_matches_torch(case, backend, dtype, rng):
    torch = torch_or_skip()
    shape, k, s, p = case
    x = rng.standard_normal(shape).astype(dtype)
    xt = to_torch(x, True)
    yt, it = torch.nn.functional.max_pool2d(xt, k, s, p, return_indices=True)
    y, idx = K.max_pool2d_forward(x, k, s, p, backend=backend)
    assert idx.dtype == np.int64
    assert_close(y, yt.detach().numpy(), dtype, "forward")
    np.testing.assert_array_equal(idx, it.numpy())
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(to_torch(dy))
    assert_close(K.max_pool2d_backward(dy, idx, x.shape, backend=backend), xt.grad.numpy(),
                 dtype, "backward")


def test_max_pool2d_ties_and_nan_follow_torch(backend):
    torch = torch_or_skip()
    x = np.array([[[[1, 1, 0, 2], [1, 0, 2, 2], [3, 3, np.nan, 1], [3, 0, 1, np.nan]]]],
                 np.float32)
    yt, it = torch.nn.functional.max_pool2d(torch.tensor(x), 2, 2, return_indices=True)
    y, idx = K.max_pool2d_forward(x, 2, backend=backend)
    np.testing.assert_array_equal(idx, it.numpy())
    np.testing.assert_array_equal(y, yt.numpy())  # NaN == NaN here
    overlapping = np.ones((1, 1, 5, 5), np.float64)
    yt, it = torch.nn.functional.max_pool2d(torch.tensor(overlapping), 3, 1, return_indices=True)
    np.testing.assert_array_equal(K.max_pool2d_forward(overlapping, 3, 1, backend=backend)[1],
                                  it.numpy())


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_torch(case, count_include_pad, backend, dtype, rng):
    torch = torch_or_skip()
    shape, k, s, p = case
    x = rng.standard_normal(shape).astype(dtype)
    xt = to_torch(x, True)
    yt = torch.nn.functional.avg_pool2d(xt, k, s, p, count_include_pad=count_include_pad)
    y = K.avg_pool2d_forward(x, k, s, p, count_include_pad, backend=backend)
    assert_close(y, yt.detach().numpy(), dtype, "forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(to_torch(dy))
    dx = K.avg_pool2d_backward(dy, x.shape, k, s, p, count_include_pad, backend=backend)
    assert_close(dx, xt.grad.numpy(), dtype, "backward")


@pytest.mark.parametrize("case", CASES[1:3], ids=IDS[1:3])
def test_pool2d_matches_float64_reference(case, backend, rng):
    from convnet.kernels import reference as ref

    shape, k, s, p = case
    x = rng.standard_normal(shape)
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (kh, kw) if s is None else ((s, s) if isinstance(s, int) else s)
    ph, pw = (p, p) if isinstance(p, int) else p
    y, idx = K.max_pool2d_forward(x, k, s, p, backend=backend)
    ey, ei = np.empty_like(y), np.empty_like(idx)
    ref.max_pool2d_forward(x, ey, ei, kh, kw, sh, sw, ph, pw)
    assert_close(y, ey, np.float64, "max")
    np.testing.assert_array_equal(idx, ei)
    for cip in (True, False):
        ya = K.avg_pool2d_forward(x, k, s, p, cip, backend=backend)
        ea = np.empty_like(ya)
        ref.avg_pool2d_forward(x, ea, kh, kw, sh, sw, ph, pw, cip)
        assert_close(ya, ea, np.float64, "avg")


def test_avg_pool2d_gradient_finite_difference(backend, rng):
    x = rng.standard_normal((2, 3, 7, 6))
    dy = rng.standard_normal(K.avg_pool2d_forward(x, 3, 2, 1, False).shape)
    v = rng.standard_normal(x.shape)

    def loss(xv):
        return float(np.sum(K.avg_pool2d_forward(xv, 3, 2, 1, False, backend=backend) * dy))

    dx = K.avg_pool2d_backward(dy, x.shape, 3, 2, 1, False, backend=backend)
    assert np.sum(dx * v) == pytest.approx(finite_difference(loss, x, v), rel=1e-8)


def test_max_pool2d_gradient_finite_difference(backend, rng):
    x = rng.permutation(2 * 3 * 8 * 8).reshape(2, 3, 8, 8).astype(np.float64)  # no ties
    y, idx = K.max_pool2d_forward(x, 3, 2, 1, backend=backend)
    dy = rng.standard_normal(y.shape)
    v = rng.standard_normal(x.shape)

    def loss(xv):
        return float(np.sum(K.max_pool2d_forward(xv, 3, 2, 1, backend=backend)[0] * dy))

    dx = K.max_pool2d_backward(dy, idx, x.shape, backend=backend)
    assert np.sum(dx * v) == pytest.approx(finite_difference(loss, x, v, eps=1e-4), rel=1e-8)
