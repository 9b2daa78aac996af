"""The fused-epilogue kernels (conv2d_forward_act, linear_forward_act): every activation
code against the float64 reference on every CPU backend, and the native kernel equal bit for
bit to the unfused product followed by the activation kernel (the epilogue uses the same
formulas, in registers)."""

import numpy as np
import pytest

import convnet as cn
from convnet.kernels import reference as ref
from tests.helpers import assert_close

K = cn.kernels
BACKENDS = [b for b in ("native", "numba") if cn.backends()[b]["available"]]
DTYPES = [np.float32, np.float64]
# kind, alpha: every activation the epilogue has, with the parameters of activation_forward
ACTS = [(None, None), ("relu", None), ("leaky_relu", 0.2), ("tanh", None), ("sigmoid", None),
        ("elu", 1.3), ("selu", None), ("gelu", 0), ("gelu", 1)]
# x, w, stride, padding, dilation: the native kernel's three forward paths (few filters:
# direct; many filters over few pixels: dense GEMM; over many pixels: per-image GEMM),
# partial register tiles, batch 1, odd and non-square shapes, stride > kernel, "same"
CONV = [
    ((2, 3, 9, 11), (5, 3, 3, 3), 1, 1, 1),
    ((1, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1),
    ((2, 16, 7, 7), (40, 16, 3, 3), 1, 1, 1),
    ((1, 8, 20, 20), (33, 8, 3, 3), 1, 1, 1),
    ((3, 2, 10, 10), (3, 2, 2, 3), 3, 0, 2),
    ((1, 5, 8, 11), (7, 5, 2, 3), 2, "same", 1),
    ((3, 4, 5, 6), (40, 4, 5, 6), 1, 0, 1),  # one window over the input: a GEMM
]
LINEAR = [(1, 1, 1), (7, 13, 29), (130, 70, 300), (4, 64, 3)]  # M, N, K (K > 256: two blocks)


def _data(rng, shape, dt):
    return rng.standard_normal(shape).astype(dt)


def _unfused(pre, kind, alpha):
    return pre if kind is None else K.activation_forward(pre, kind, alpha, backend="native")


def _flushed(a):
    """Denormals as the kernels' flush-to-zero mode leaves them (the fused kernel runs in
    it; the stand-alone activation kernel does not)."""
    return np.where(np.abs(a) < np.finfo(a.dtype).tiny, np.copysign(a.dtype.type(0), a), a)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind,alpha", ACTS)
@pytest.mark.parametrize("geo", CONV)
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d_act_matches_reference(backend, geo, kind, alpha, dt):
    x_shape, w_shape, stride, padding, dilation = geo
    rng = np.random.default_rng(1)
    x, w = _data(rng, x_shape, dt), _data(rng, w_shape, dt)
    b = _data(rng, w_shape[0], dt) if kind != "tanh" else None
    y = K.conv2d_act_forward(x, w, b, stride, padding, dilation, kind, alpha, backend=backend)
    pre = K.conv2d_forward(x, w, b, stride, padding, dilation, backend="native")
    expected = np.empty(pre.shape, np.float64)
    _, args = K._conv_geometry(x.shape, w.shape, stride, padding, dilation)
    ref.conv2d_forward_act(x, w, b, expected, *args, *K.epilogue_args(kind, alpha))
    assert_close(y, expected, dt, f"{kind} {backend}", scale=3)
    if backend == "native" and kind != "gelu":
        # (GELU's erfc goes through denormals, which the fused kernel flushes to zero)
        np.testing.assert_array_equal(y, _flushed(_unfused(pre, kind, alpha)))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind,alpha", ACTS)
@pytest.mark.parametrize("m,n,k", LINEAR)
@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_act_matches_reference(backend, m, n, k, kind, alpha, dt):
    rng = np.random.default_rng(2)
    x = _data(rng, (m, k), dt)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(dt)
    b = _data(rng, n, dt) if kind != "sigmoid" else None
    y = K.linear_act_forward(x, w, b, kind, alpha, backend=backend)
    expected = np.empty((m, n), np.float64)
    ref.linear_forward_act(x, w, b, expected, *K.epilogue_args(kind, alpha))
    assert_close(y, expected, dt, f"{kind} {backend}", scale=3)
    if backend == "native":
        pre = K.gemm(x, w, trans_b=True, backend="native")
        if b is not None:
            pre += b
        # the product is the GEMM's, bit for bit; the activation agrees to its last ulp
        # (NumPy's bias add and the vector one may round the same sum differently only
        # through contraction, which neither does)
        assert_close(y, _unfused(pre, kind, alpha), dt, "fused vs unfused", scale=0.1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_act_without_inputs_is_the_bias(backend):
    b = np.array([-1.0, 0.5, 2.0], np.float32)
    y = K.linear_act_forward(np.ones((2, 0), np.float32), np.ones((3, 0), np.float32), b,
                             "relu", backend=backend)
    np.testing.assert_array_equal(y, [[0.0, 0.5, 2.0]] * 2)


def test_native_epilogue_keeps_nan_and_infinities_as_the_unfused_path():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0], x[0, 0, 1, 1], x[0, 0, 2, 2] = np.nan, np.inf, -np.inf
    w = np.ones((2, 1, 1, 1), np.float32)
    w[1] = -1
    for kind, alpha in ACTS[1:-2]:
        y = K.conv2d_act_forward(x, w, None, activation=kind, alpha=alpha, backend="native")
        pre = K.conv2d_forward(x, w, backend="native")
        np.testing.assert_array_equal(y, _flushed(_unfused(pre, kind, alpha)), err_msg=kind)


def test_epilogue_args_follow_the_manifest():
    assert K.epilogue_args(None) == (0, 0.0, 0.0)
    assert K.epilogue_args("relu") == (1, 0.0, 0.0)
    assert K.epilogue_args("leaky_relu") == (1, 0.01, 0.0)
    assert K.epilogue_args("selu") == (4, K.SELU_ALPHA, K.SELU_SCALE)
    assert K.epilogue_args("gelu", 1) == (5, 1.0, 0.0)
    assert K.spec.EPILOGUE_ACTS[K.epilogue_args("sigmoid")[0]] == "sigmoid"


@pytest.mark.parametrize("call,error,match", [
    (lambda: K.conv2d_act_forward(np.ones((1, 2, 4, 4), np.float32),
                                  np.ones((3, 2, 3, 3), np.float32), activation="swish"),
     ValueError, "activation"),
    (lambda: K.conv2d_act_forward(np.ones((1, 2, 4, 4), np.float32),
                                  np.ones((3, 2, 3, 3)), activation="relu"),
     TypeError, "w: dtype"),
    (lambda: K.conv2d_act_forward(np.ones((1, 2, 4, 4), np.float32),
                                  np.ones((3, 2, 3, 3), np.float32), np.ones(2, np.float32)),
     ValueError, "b: expected shape"),
    (lambda: K.linear_act_forward(np.ones((2, 5), np.float32), np.ones((3, 4), np.float32)),
     ValueError, "w: has 4 input features"),
    (lambda: K.linear_act_forward(np.ones((2, 5), np.float32), np.ones((3, 5), np.float32),
                                  np.ones(4, np.float32)), ValueError, "b: expected shape"),
    (lambda: K.linear_act_forward(np.ones(5, np.float32), np.ones((3, 5), np.float32)),
     ValueError, "x: expected a 2-D"),
])
def test_bad_arguments_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_level_refuses_an_unknown_activation_code(backend):
    from convnet.kernels._boundary import launch

    x, w = np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="act"):
        launch("conv2d_forward_act", backend, x, w, None, np.empty_like(x), 1, 1, 0, 0, 1, 1,
               len(K.spec.EPILOGUE_ACTS), 0.0, 0.0)


@pytest.mark.parametrize("kind,alpha", [("relu", None), ("tanh", None)])
@pytest.mark.parametrize("m,n,k", [(9, 1000, 300), (64, 520, 70), (3, 4000, 33)])
def test_linear_act_on_two_threads_over_column_chunks(m, n, k, kind, alpha):
    # Wide outputs: the threads claim column chunks of C (gemm.h's shared-A path), and the
    # epilogue must run on every chunk's last depth block there too.
    if not cn.backends()["native"]["available"]:
        pytest.skip("the native backend is not built")
    rng = np.random.default_rng(5)
    x = _data(rng, (m, k), np.float32)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    b = _data(rng, n, np.float32)
    before = cn.get_num_threads()
    cn.set_num_threads(2)
    try:
        y = K.linear_act_forward(x, w, b, kind, alpha, backend="native")
        pre = K.gemm(x, w, trans_b=True, backend="native") + b
    finally:
        cn.set_num_threads(before)
    assert_close(y, _unfused(pre, kind, alpha), np.float32, "fused vs unfused", scale=0.1)
