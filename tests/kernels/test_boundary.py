"""The validation boundary (convnet/kernels/_boundary.py) on every CPU backend: each bad input
of issue 12 is a clear ValueError/TypeError on native and Numba alike, and the edge cases
the backends used to disagree on now agree with PyTorch."""

import os
import subprocess
import sys

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from convnet.kernels import _boundary, spec
from tests.helpers import torch_or_skip

K = cn.kernels
f32 = np.float32


def test_every_backend_matches_the_manifest():
    for name, info in cn.backends().items():
        if info["available"]:
            module = cn.kernels._registry.get(name)
            assert [k for k in spec.NAMES if not callable(getattr(module, k, None))] == []
    from convnet.kernels import reference

    assert [k for k in spec.NAMES if not callable(getattr(reference, k, None))] == []


def test_a_backend_missing_a_kernel_is_refused_at_load():
    import types

    fake = types.SimpleNamespace(**{k: (lambda *a: None) for k in spec.NAMES[1:]})
    with pytest.raises(ImportError, match=f"lacks the kernels \\['{spec.NAMES[0]}'\\]"):
        spec.check_backend("fake", fake)


def test_kernels_all_and_docs_come_from_the_manifest():
    assert {k.op for k in spec.KERNELS} <= set(K._OPS)
    table = spec.markdown_table()
    assert all(f"`{k}`" in table for k in spec.NAMES)
    assert "gemm" in K.__all__ and "activation_forward" in K.__all__


# --------------------------------------------------------------------------- issue 12's cases


def _pool_backward(dy_shape, indices, x_shape, backend):
    return K.max_pool2d_backward(np.ones(dy_shape, f32), indices, x_shape, backend=backend)


@pytest.mark.parametrize("bad", [10**9, 16, -1])
def test_max_pool_backward_refuses_indices_outside_the_plane(backend, bad):
    idx = np.zeros((1, 1, 2, 2), np.int64)
    idx[0, 0, 1, 1] = bad  # 16 is one past the 4x4 plane
    with pytest.raises(ValueError, match=r"indices: values must be positions in the 4x4 plane"):
        _pool_backward((1, 1, 2, 2), idx, (1, 1, 4, 4), backend)


def test_max_pool_backward_takes_the_last_position(backend):
    idx = np.full((1, 1, 2, 2), 15, np.int64)
    dx = _pool_backward((1, 1, 2, 2), idx, (1, 1, 4, 4), backend)
    assert dx[0, 0, 3, 3] == 4 and dx.sum() == 4


@pytest.mark.parametrize("scales", [(1e-20, 1e-20), (1e-20, 1.0), (0.1, 2.0)])
def test_upsample_refuses_scales_that_leave_the_input(backend, scales):
    dy = np.ones((1, 1, 8, 8), f32)
    with pytest.raises(ValueError, match="scales: a scale of"):
        K.upsample_bilinear2d_backward(dy, (1, 1, 4, 4), scales=scales, backend=backend)
    with pytest.raises(ValueError, match="scales: a scale of"):
        K.upsample_nearest2d_forward(np.ones((1, 1, 4, 4), f32), (8, 8), scales=scales,
                                     backend=backend)


def test_upsample_keeps_consistent_scales(backend):
    x = np.arange(16, dtype=f32).reshape(1, 1, 4, 4)
    y = K.upsample_nearest2d_forward(x, (8, 8), scales=(2.0, 2.0), backend=backend)
    np.testing.assert_array_equal(y[0, 0, ::2, ::2], x[0, 0])


@pytest.mark.parametrize("alias", ["a", "b", "both"])
@pytest.mark.parametrize("n", [5, 320])
def test_gemm_with_c_aliasing_an_input(backend, alias, n, rng):
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    c = {"a": a, "b": b, "both": a}[alias]
    if alias == "both":
        b = a
    expected = 2.0 * a @ b + 0.5 * c
    out = K.gemm(a, b, c, alpha=2.0, beta=0.5, backend=backend)
    assert out is c
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10 * n)


def test_gemm_refuses_overlap_at_the_backend_level(backend):
    a = np.ones((4, 4))
    with pytest.raises(ValueError, match="c: is written but overlaps a"):
        _boundary.launch("gemm", backend, a, np.ones((4, 4)), a, 1.0, 0.0, False, False)


@pytest.mark.parametrize("stride", [2**62 + 1, 2**31, (1, 2**40)])
def test_geometry_that_would_overflow_is_refused(backend, stride):
    x = np.ones((1, 1, 5, 5), f32)
    w = np.ones((1, 1, 3, 3), f32)
    with pytest.raises(ValueError, match=r"sh|sw: must be in \[1, 2147483647\]"):
        K.conv2d_forward(x, w, stride=stride, backend=backend)
    with pytest.raises(ValueError, match=r"s[hw]: must be in"):
        K.max_pool2d_forward(x, 2, stride=stride, backend=backend)


def test_hidden_size_zero_is_refused_as_torch_does(backend):
    torch = torch_or_skip()
    with pytest.raises(ValueError):  # torch: "hidden_size must be greater than zero"
        torch.nn.RNN(3, 0)
    x = cn.tensor(np.ones((2, 1, 3), f32))
    w = [(cn.tensor(np.ones((0, 3), f32)), cn.tensor(np.ones((0, 0), f32)), None, None)]
    with cn.kernels.use_backend(backend):
        with pytest.raises(ValueError, match="H must be >= 1"):
            F.recurrent_layer(x, w, mode="rnn_tanh")
    with pytest.raises(ValueError, match="hidden_size"):
        cn.nn.RNN(3, 0)


def test_hidden_size_zero_does_not_crash_the_process():
    # the native recurrence used to die with SIGFPE here: run it where a crash is visible
    code = ("import numpy as np, convnet as cn, convnet.functional as F\n"
            "x = cn.tensor(np.ones((2, 1, 3), np.float32))\n"
            "w = [(cn.tensor(np.ones((0, 3), np.float32)), cn.tensor(np.ones((0, 0), "
            "np.float32)), None, None)]\n"
            "try:\n    F.recurrent_layer(x, w, mode='lstm')\nexcept ValueError:\n    pass\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()[-2000:]


def test_relu_of_minus_infinity_is_zero(backend, dtype):
    x = np.array([-np.inf, -1.0, 0.0, 2.0, np.inf, np.nan], dtype)
    y = K.activation_forward(x, "relu", backend=backend)
    np.testing.assert_array_equal(y[:5], [0, 0, 0, 2, np.inf])
    assert np.isnan(y[5])
    yl = K.activation_forward(x, "leaky_relu", 0.1, backend=backend)
    assert yl[0] == -np.inf and np.isnan(yl[5])


@pytest.mark.parametrize("kind", ["elu", "selu"])
def test_elu_backward_at_nan_and_infinities_as_torch(kind, backend, dtype):
    torch = torch_or_skip()
    x = np.array([np.nan, -np.inf, np.inf, 0.0, -1.0], dtype)
    dy = np.ones_like(x)
    dx = K.activation_backward(dy, x, kind, backend=backend)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    getattr(torch.nn.functional, kind)(xt).sum().backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("padding", [((0, 3), (0, 0)), ((2, 0), (1, 4)), ((0, 5), (3, 0))])
def test_asymmetric_explicit_padding_runs_on_every_backend(padding, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((4, 3, 3, 2))
    (t, b), (left, right) = padding
    xt = torch.nn.functional.pad(torch.tensor(x), (left, right, t, b))
    expected = torch.nn.functional.conv2d(xt, torch.tensor(w)).numpy()
    outs = {be: K.conv2d_forward(x, w, padding=padding, backend=be)
            for be in ("native", "numba") if cn.backends()[be]["available"]}
    for y in outs.values():
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(expected.shape)
    grads = [(K.conv2d_backward_data(dy, w, x.shape, padding=padding, backend=be),
              K.conv2d_backward_weight(dy, x, w.shape, padding=padding, backend=be))
             for be in outs]
    for dx, dw in grads[1:]:
        np.testing.assert_allclose(dx, grads[0][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dw, grads[0][1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("call,exc,match", [
    (lambda be: _boundary.launch("tanh_forward", be, np.ones(4), np.ones(4)[::-1].copy()[::-1]),
     ValueError, "y: expected a C-contiguous array"),
    (lambda be: _boundary.launch("tanh_forward", be, np.ones(4), np.ones(5)), ValueError,
     r"y: expected shape \(4,\)"),
    (lambda be: _boundary.launch("leaky_relu_forward", be, np.ones(4), np.ones(4), np.nan),
     ValueError, "slope: must be finite"),
    (lambda be: _boundary.launch("batch_norm_forward_training", be, np.ones((2, 3, 4)),
                                 np.ones(3), np.ones(3), np.ones((2, 3, 4)), np.ones(3),
                                 np.ones(3), np.ones(3), -1.0), ValueError, "eps: must be in"),
    (lambda be: _boundary.launch("rnn_recurrence_forward", be, 4, np.ones((1, 1, 1)),
                                 np.ones((1, 1)), np.ones(1), np.ones(1), np.ones((2, 1, 1)),
                                 None, None, False), ValueError, r"mode: must be in \[0, 3\]"),
    (lambda be: _boundary.launch("rnn_cell_forward", be, np.ones((2, 3)), np.ones(3),
                                 np.ones((2, 3)), 1), TypeError, "relu: expected a bool"),
    (lambda be: _boundary.launch("tanh_forward", be, np.ones(4), np.ones(4, np.float32)),
     TypeError, "y: expected dtype float64, got float32"),
    (lambda be: _boundary.launch("tanh_forward", be, np.ones(4), None), TypeError,
     "y: is required"),
])
def test_backend_level_calls_are_checked(backend, call, exc, match):
    with pytest.raises(exc, match=match):
        call(backend)


def test_read_only_output_is_refused(backend):
    y = np.ones(4)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="y: is written but the array is read-only"):
        _boundary.launch("tanh_forward", backend, np.ones(4), y)


def test_fast_path_accepts_exactly_what_validate_accepts():
    # launch() first tries a check generated from the manifest; whatever it declines goes
    # through validate(). A call both accept, calls only validate normalises, and bad calls.
    x, y = np.ones((2, 3), f32), np.empty((2, 3), f32)
    check = _boundary._FAST.get("leaky_relu_forward") or _boundary._fast_check(
        "leaky_relu_forward")
    assert check((x, y, 0.5)) == 1
    _boundary.validate("leaky_relu_forward", (x, y, 0.5))
    h = x.astype(cn.bfloat16)
    assert check((h, np.empty_like(h), 0.5)) == 2  # 16-bit: run on float32 compute
    _boundary.validate("leaky_relu_forward", (h, np.empty_like(h), 0.5))
    for args in [(x, y, f32(0.5)), (x, y, 1), (x.astype(">f4"), y, 0.5)]:
        assert check(args) is False  # not the common case: validate decides
    _boundary.validate("leaky_relu_forward", (x, y, f32(0.5)))
    for args in [(x, np.empty((3, 2), f32), 0.5), (x, x, 0.5), (x, y, float("nan")),
                 (x, y, float("inf")), (x, y[:, :2], 0.5), (x, y.astype(np.float64), 0.5),
                 (h, y, 0.5), (x, h, 0.5), (h, y.astype(np.float16), 0.5),
                 (x.astype(np.int16), y.astype(np.int16), 0.5), (x, y), (x, y, 0.5, 1)]:
        assert check(args) is False
        with pytest.raises((ValueError, TypeError)):
            _boundary.validate("leaky_relu_forward", args)


def test_index_range_native_pass_matches_numpy():
    native = cn.kernels._registry.get("native")
    if native is None:
        pytest.skip("native backend not built")
    rng = np.random.default_rng(3)
    for shape in [(1,), (7,), (2, 3, 5, 4)]:
        a = rng.integers(-10**12, 10**12, size=shape, dtype=np.int64)
        assert native.index_range(a) == (a.min(), a.max())
    with pytest.raises(ValueError, match="empty"):
        native.index_range(np.ones(0, np.int64))
