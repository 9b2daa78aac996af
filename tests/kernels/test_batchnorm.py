import numpy as np
import pytest

import convnet as cn
from tests.helpers import assert_close, finite_difference, to_torch, torch_or_skip

K = cn.kernels

SHAPES = [(4, 3, 5, 5), (1, 7, 3, 2), (16, 5), (2, 1, 1, 9), (3, 33, 1, 1), (32, 16, 14, 14)]


@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_training_matches_torch(shape, backend, dtype, rng):
    torch = torch_or_skip()
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)  # offset mean: tests cancellation
    w = rng.standard_normal(c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.5, 2, c).astype(dtype)
    rm_t, rv_t = to_torch(rm), to_torch(rv)
    xt, wt, bt = to_torch(x, True), to_torch(w, True), to_torch(b, True)
    yt = torch.nn.functional.batch_norm(xt, rm_t, rv_t, wt, bt, training=True, momentum=0.2,
                                        eps=1e-3)
    y, mean, invstd = K.batch_norm_forward_training(x, w, b, rm, rv, momentum=0.2, eps=1e-3,
                                                    backend=backend)
    assert_close(y, yt.detach().numpy(), dtype, "y")
    assert_close(rm, rm_t.numpy(), dtype, "running_mean")
    assert_close(rv, rv_t.numpy(), dtype, "running_var")
    axes = (0,) + tuple(range(2, len(shape)))
    assert_close(mean, x.astype(np.float64).mean(axis=axes), dtype, "mean")
    assert_close(invstd, 1 / np.sqrt(x.astype(np.float64).var(axis=axes) + 1e-3), dtype,
                 "invstd")

    dy = rng.standard_normal(shape).astype(dtype)
    yt.backward(to_torch(dy))
    dx, dw, db = K.batch_norm_backward(dy, x, mean, invstd, w, backend=backend)
    assert_close(dx, xt.grad.numpy(), dtype, "dx", scale=5)
    assert_close(dw, wt.grad.numpy(), dtype, "dweight", scale=5)
    assert_close(db, bt.grad.numpy(), dtype, "dbias")


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_batch_norm_inference_matches_torch(shape, backend, dtype, rng):
    torch = torch_or_skip()
    c = shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    yt = torch.nn.functional.batch_norm(to_torch(x), to_torch(rm), to_torch(rv), to_torch(w),
                                        to_torch(b), training=False, eps=1e-5)
    y = K.batch_norm_forward_inference(x, rm, rv, w, b, backend=backend)
    assert_close(y, yt.numpy(), dtype, "y")


def test_batch_norm_defaults_to_unit_affine(backend, rng):
    x = rng.standard_normal((8, 4, 3, 3))
    y, mean, invstd = K.batch_norm_forward_training(x, backend=backend)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1 / (1 + 1e-5 / x.var(axis=(0, 2, 3))),
                               rtol=1e-10)


def test_batch_norm_backward_finite_difference(backend, rng):
    x = rng.standard_normal((3, 4, 3, 2))
    w = rng.standard_normal(4)
    b = rng.standard_normal(4)
    dy = rng.standard_normal(x.shape)
    v = rng.standard_normal(x.shape)
    vw = rng.standard_normal(4)

    def loss(xv, wv=w):
        return float(np.sum(K.batch_norm_forward_training(xv, wv, b, backend=backend)[0] * dy))

    _, mean, invstd = K.batch_norm_forward_training(x, w, b, backend=backend)
    dx, dw, _ = K.batch_norm_backward(dy, x, mean, invstd, w, backend=backend)
    assert np.sum(dx * v) == pytest.approx(finite_difference(loss, x, v), rel=1e-6, abs=1e-8)
    assert np.sum(dw * vw) == pytest.approx(
        finite_difference(lambda wv: loss(x, wv), w, vw), rel=1e-7)


def test_batch_norm_matches_float64_reference(backend, rng):
    from convnet.kernels import reference as ref

    x = rng.standard_normal((5, 3, 4, 4))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    y, mean, invstd = K.batch_norm_forward_training(x, w, b, backend=backend)
    ey, em, ev, ei = np.empty((5, 3, 16)), np.empty(3), np.empty(3), np.empty(3)
    ref.batch_norm_forward_training(x.reshape(5, 3, 16), w, b, ey, em, ev, ei, 1e-5)
    assert_close(y, ey.reshape(x.shape), np.float64, "y")
    assert_close(invstd, ei, np.float64, "invstd")
