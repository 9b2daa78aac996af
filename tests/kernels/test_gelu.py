"""GELU, the worked example of adding a kernel (README, "Adding a kernel"): its kernels on
both CPU backends against PyTorch and the float64 reference, its gradient against finite
differences, and F.gelu / nn.GELU against torch.nn.functional.gelu."""

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from convnet.kernels import reference as ref
from tests.helpers import assert_close, check_op, to_torch, torch_or_skip

K = cn.kernels
APPROX = {"none": 0, "tanh": 1}


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (17,), (3, 5, 7), (2, 3, 16, 17)])
def test_gelu_kernels_match_torch(approximate, shape, backend, dtype, rng):
    torch = torch_or_skip()
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    xt = to_torch(x, True)
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    y = K.activation_forward(x, "gelu", APPROX[approximate], backend=backend)
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, yt.detach().numpy(), dtype, "forward")
    dy = rng.standard_normal(shape).astype(dtype)
    yt.backward(to_torch(dy))
    dx = K.activation_backward(dy, x, "gelu", APPROX[approximate], backend=backend)
    assert_close(dx, xt.grad.numpy(), dtype, "backward")


@pytest.mark.parametrize("approximate", [0, 1])
def test_gelu_gradient_matches_finite_differences(approximate, backend, rng):
    x = rng.standard_normal(200) * 3
    dy = rng.standard_normal(200)
    dx = K.activation_backward(dy, x, "gelu", approximate, backend=backend)
    eps = 1e-6
    yp = K.activation_forward(x + eps, "gelu", approximate, backend=backend)
    ym = K.activation_forward(x - eps, "gelu", approximate, backend=backend)
    np.testing.assert_allclose(dx, dy * (yp - ym) / (2 * eps), rtol=1e-7, atol=1e-8)


def test_gelu_reference_is_the_formula():
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    y = np.empty(5)
    ref.gelu_forward(x, y, 0)
    phi = np.array([0.0013498980316301, 0.3085375387259869, 0.5, 0.6914624612740131,
                    0.9986501019683699])  # the standard normal CDF at x
    np.testing.assert_allclose(y, x * phi, rtol=1e-13, atol=1e-15)


def test_gelu_at_infinities_and_nan_as_torch(backend):
    torch = torch_or_skip()
    x = np.array([-np.inf, -50.0, 0.0, 50.0, np.inf, np.nan])
    for approximate in ("none", "tanh"):
        y = K.activation_forward(x, "gelu", APPROX[approximate], backend=backend)
        expected = torch.nn.functional.gelu(torch.tensor(x), approximate=approximate).numpy()
        np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
        np.testing.assert_allclose(y[~np.isnan(y)], expected[~np.isnan(expected)], rtol=1e-15)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_functional_gelu_matches_torch(approximate, dtype, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((4, 9)) * 2
    check_op(lambda t: F.gelu(t, approximate),
             lambda t: torch.nn.functional.gelu(t, approximate=approximate), [x], dtype, rng=rng)


def test_gelu_module_and_bad_arguments():
    torch = torch_or_skip()
    m = cn.nn.GELU(approximate="tanh")
    assert repr(m) == "GELU(approximate=tanh)" and cn.nn.GELU().approximate == "none"
    x = np.linspace(-4, 4, 11)
    np.testing.assert_allclose(m(cn.tensor(x)).numpy(),
                               torch.nn.GELU(approximate="tanh")(torch.tensor(x)).numpy(),
                               rtol=1e-12, atol=1e-15)  # torch's 1 + tanh(u) cancels a little
    with pytest.raises(ValueError, match="approximate: expected 'none' or 'tanh'"):
        F.gelu(cn.tensor(x), approximate="erf")
    with pytest.raises(ValueError, match=r"approximate: must be in \[0, 1\]"):
        K.activation_forward(x, "gelu", 2)
