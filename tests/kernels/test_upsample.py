"""Upsampling kernels (nearest, bilinear with and without align_corners) against PyTorch's
F.interpolate, the float64 interpolation-matrix reference, and finite differences."""

import numpy as np
import pytest

import convnet as cn
from convnet.kernels import reference as ref
from tests.helpers import assert_close, finite_difference, torch_or_skip

K = cn.kernels

# x shape, output size, scales (the factors the size came from, or None)
CASES = [
    ((1, 1, 1, 1), (1, 1), None),
    ((1, 1, 1, 1), (3, 4), None),                  # one pixel everywhere
    ((2, 3, 4, 5), (8, 10), (2.0, 2.0)),           # exact 2x
    ((2, 3, 5, 7), (11, 13), None),                # odd, non-integer ratios
    ((1, 2, 3, 4), (7, 6), (2.5, 1.7)),            # the factors map, not the sizes
    ((2, 2, 8, 9), (3, 3), None),                  # downsampling
    ((1, 2, 10, 10), (6, 6), (0.6, 0.6)),
    ((2, 1, 6, 4), (6, 12), (1.0, 3.0)),           # one axis unchanged
    ((3, 4, 7, 7), (28, 28), (4.0, 4.0)),
    ((1, 3, 5, 5), (6, 6), (1.3, 1.3)),
    ((1, 1, 3, 3), (9, 9), None),                  # 1/3 steps: float32 rounding of the index
]
IDS = [f"x{c[0]}-to{c[1]}-s{c[2]}".replace(" ", "") for c in CASES]
MODES = [("nearest", False), ("bilinear", False), ("bilinear", True)]
MODE_IDS = ["nearest", "bilinear", "bilinear-corners"]


def run(mode, align_corners, x, size, scales, backend):
    if mode == "nearest":
        return K.upsample_nearest2d_forward(x, size, scales, backend=backend)
    return K.upsample_bilinear2d_forward(x, size, align_corners, scales, backend=backend)


def run_back(mode, align_corners, dy, x_shape, scales, backend):
    if mode == "nearest":
        return K.upsample_nearest2d_backward(dy, x_shape, scales, backend=backend)
    return K.upsample_bilinear2d_backward(dy, x_shape, align_corners, scales, backend=backend)


def torch_interp(x, size, scales, mode, align_corners, dtype):
    """PyTorch in the same dtype (nearest indices are float32 there whatever the dtype)."""
    torch = torch_or_skip()
    xt = torch.tensor(x, requires_grad=True)
    kw = {"size": size} if scales is None else {"scale_factor": scales}
    y = torch.nn.functional.interpolate(xt, mode=mode, **kw,
                                        align_corners=align_corners if mode != "nearest"
                                        else None)
    assert tuple(y.shape[2:]) == tuple(size)
    return y, xt


@pytest.mark.parametrize("mode,align_corners", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_upsample_matches_torch(case, mode, align_corners, backend, dtype, rng):
    x_shape, size, scales = case
    x = rng.standard_normal(x_shape).astype(dtype)
    yt, xt = torch_interp(x, size, scales, mode, align_corners, dtype)
    y = run(mode, align_corners, x, size, scales, backend)
    assert y.dtype == dtype and y.shape == tuple(yt.shape)
    if mode == "nearest":  # a copy: exactly the same pixels
        np.testing.assert_array_equal(y, yt.detach().numpy())
    else:
        assert_close(y, yt.detach().numpy(), dtype, "forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch_or_skip().tensor(dy))
    dx = run_back(mode, align_corners, dy, x.shape, scales, backend)
    assert_close(dx, xt.grad.numpy(), dtype, "backward", scale=2)


@pytest.mark.parametrize("mode,align_corners", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_upsample_matches_float64_reference(case, mode, align_corners, backend, rng):
    x_shape, size, scales = case
    x = rng.standard_normal(x_shape)
    s = scales or (0.0, 0.0)
    y = run(mode, align_corners, x, size, scales, backend)
    assert_close(y, ref.upsample_ref(x, size, mode, align_corners, s), np.float64, "forward")
    dy = rng.standard_normal(y.shape)
    assert_close(run_back(mode, align_corners, dy, x.shape, scales, backend),
                 ref.upsample_backward_ref(dy, x_shape[2:], mode, align_corners, s),
                 np.float64, "backward")


@pytest.mark.parametrize("mode,align_corners", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("case", [CASES[3], CASES[4], CASES[5]], ids=[IDS[3], IDS[4], IDS[5]])
def test_upsample_gradient_finite_difference(case, mode, align_corners, backend, rng):
    x_shape, size, scales = case
    x = rng.standard_normal(x_shape)
    dy = rng.standard_normal((*x_shape[:2], *size))
    v = rng.standard_normal(x_shape)
    dx = run_back(mode, align_corners, dy, x_shape, scales, backend)

    def loss(xv):
        return float(np.sum(run(mode, align_corners, xv, size, scales, backend) * dy))

    assert np.sum(dx * v) == pytest.approx(finite_difference(loss, x, v), rel=1e-7)


def test_known_values():
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_array_equal(K.upsample_nearest2d_forward(x, (4, 4))[0, 0],
                                  np.kron([[1, 2], [3, 4]], np.ones((2, 2))))
    y = K.upsample_bilinear2d_forward(x, (3, 3), align_corners=True)[0, 0]
    np.testing.assert_allclose(y, [[1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]])
    # align_corners=False at 2x: the edge outputs clamp, the inner ones are 1/4-3/4 mixes
    y = K.upsample_bilinear2d_forward(x[:, :, :1], (1, 4))[0, 0, 0]
    np.testing.assert_allclose(y, [1, 1.25, 1.75, 2])


def test_backends_agree(rng):
    avail = [n for n in ("native", "numba") if cn.backends()[n]["available"]]
    if len(avail) < 2:
        pytest.skip(f"only {avail} available")
    x = rng.standard_normal((3, 5, 9, 8)).astype(np.float32)
    for mode, ac in MODES:
        ys = [run(mode, ac, x, (17, 21), None, b) for b in avail]
        assert_close(ys[1], ys[0], np.float32, f"{mode} numba vs native")


def test_bad_arguments_are_refused(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="x: expected a 4-D"):
        K.upsample_nearest2d_forward(x[0], (8, 8))
    with pytest.raises(ValueError, match="output_size"):
        K.upsample_nearest2d_forward(x, (0, 8))
    with pytest.raises(ValueError, match="scales"):
        K.upsample_bilinear2d_forward(x, (8, 8), scales=(2.0, -1.0))
    with pytest.raises(TypeError, match="x: expected float32 or float64"):
        K.upsample_nearest2d_forward(x.astype(np.int32), (8, 8))
    with pytest.raises(ValueError, match="dy: batch/channels"):
        K.upsample_bilinear2d_backward(np.zeros((2, 4, 8, 8), np.float32), x.shape)
    with pytest.raises(ValueError, match="backend"):
        K.upsample_nearest2d_forward(x, (8, 8), backend="cuda")
