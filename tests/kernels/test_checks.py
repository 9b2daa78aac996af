"""Bad input is refused with a clear exception before any kernel runs."""

import numpy as np
import pytest

import convnet as cn

K = cn.kernels
f32 = np.float32


def x4(*shape, dtype=f32):
    return np.ones(shape, dtype)


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: K.conv2d_forward(x4(2, 3, 8), x4(4, 3, 3, 3)), ValueError, r"x: expected a 4-D"),
        (lambda: K.conv2d_forward(x4(2, 3, 8, 8), x4(4, 2, 3, 3)), ValueError,
         r"w: has 2 input channels .* x has 3"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 5, 5)), ValueError,
         r"larger than the padded input"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), stride=0), ValueError,
         r"stride: must be >= 1"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), padding=-1), ValueError,
         r"padding: must be >= 0"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), padding="full"), ValueError,
         r"padding: expected"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), dilation=(1, 0)), ValueError,
         r"dilation: must be >= 1"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), stride=(0, 1)), ValueError,
         r"stride: must be >= 1"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), stride=(1, 2, 1)), ValueError,
         r"stride: expected an int or a pair"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), padding=(1, -1)), ValueError,
         r"padding: must be >= 0"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), padding=(1.5, 1)), TypeError,
         r"padding: expected ints"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(2, 1, 3, 3), b=x4(3)), ValueError,
         r"b: expected shape \(2,\)"),
        (lambda: K.conv2d_forward(np.ones((1, 1, 4, 4), np.int32), x4(1, 1, 3, 3)), TypeError,
         r"x: expected float32 or float64 \(or bfloat16, float16\), got dtype int32"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3, dtype=np.float64)), TypeError,
         r"w: dtype float64 differs"),
        (lambda: K.conv2d_forward([[1.0]], x4(1, 1, 3, 3)), TypeError,
         r"x: expected a NumPy or CuPy array, got list"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), backend="fast"), ValueError,
         r"backend: unknown backend 'fast'"),
        (lambda: K.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), backend="cuda"), ValueError,
         r"needs CuPy arrays"),
        (lambda: K.conv2d_backward_data(x4(1, 1, 3, 3), x4(1, 1, 3, 3), (1, 1, 4, 4)), ValueError,
         r"dy: expected the output shape \(1, 1, 2, 2\)"),
        (lambda: K.conv2d_backward_weight(x4(1, 1, 2, 2), x4(1, 1, 4, 4), (1, 1, 3)), ValueError,
         r"w_shape: expected 4 positive sizes"),
        (lambda: K.max_pool2d_forward(x4(1, 1, 4, 4), 2, 2, 2), ValueError,
         r"padding: must be at most half the kernel"),
        (lambda: K.max_pool2d_forward(x4(1, 1, 4, 4), 0), ValueError, r"kernel_size: must be"),
        (lambda: K.avg_pool2d_forward(x4(1, 1, 2, 2), 3), ValueError,
         r"larger than the padded input"),
        (lambda: K.max_pool2d_backward(x4(1, 1, 2, 2), np.zeros((1, 1, 2, 2), np.int32),
                                       (1, 1, 4, 4)), TypeError, r"indices: expected the int64"),
        (lambda: K.max_pool2d_backward(x4(1, 1, 2, 2), np.full((1, 1, 2, 2), 99), (1, 1, 4, 4),
                                       backend="native"), ValueError,
         r"indices: values must be positions in the 4x4 plane"),
        (lambda: K.batch_norm_forward_training(x4(2, 3, 4)), ValueError,
         r"x: expected \(N, C\) or \(N, C, H, W\)"),
        (lambda: K.batch_norm_forward_training(x4(2, 3, 4, 4), weight=x4(4)), ValueError,
         r"weight: expected shape \(3,\)"),
        (lambda: K.batch_norm_forward_training(x4(1, 3), running_mean=x4(3), running_var=x4(3)),
         ValueError, r"needs more than one"),
        (lambda: K.gemm(x4(2, 3), x4(4, 5)), ValueError, r"inner dimensions must match"),
        (lambda: K.gemm(x4(2, 3), x4(3, 5), c=x4(5, 2)), ValueError, r"c: expected shape"),
        (lambda: K.gemm(x4(2, 3), x4(3, 5), c=np.ones((2, 5), np.float64)), TypeError,
         r"c: expected a float32 array"),
        (lambda: K.gemm(x4(2, 3, 1), x4(3, 5)), ValueError, r"a: expected a 2-D"),
    ],
)
def test_bad_input_is_refused(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_native_binding_refuses_what_would_crash():
    native = cn.backends()["native"]
    if not native["available"]:
        pytest.skip(native["detail"])
    from convnet import _C

    with pytest.raises(ValueError, match="sizes must be in"):
        _C.conv2d_forward(x4(1, 1, 4, 4), x4(1, 1, 3, 3), None, x4(1, 1, 0, 9), 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.gemm(x4(4, 4)[:, ::2], x4(2, 2), x4(4, 2), 1.0, 0.0, False, False)
    with pytest.raises(TypeError):
        _C.gemm(x4(2, 2), x4(2, 2), np.ones((2, 2)), 1.0, 0.0, False, False)


def test_backends_report():
    info = cn.backends()
    assert set(info) >= {"native", "numba", "cuda"}
    for entry in info.values():
        assert isinstance(entry["available"], bool) and isinstance(entry["detail"], str)
        assert entry["detail"]
    assert info["cuda"]["available"] is False or info["cuda"]["detail"]


def test_threads_roundtrip():
    before = cn.get_num_threads()
    try:
        cn.set_num_threads(1)
        assert cn.get_num_threads() == 1
    finally:
        cn.set_num_threads(before)
    with pytest.raises(ValueError, match="n: must be >= 1"):
        cn.set_num_threads(0)


def test_tuple_stride_and_padding_match_the_int_forms():
    x = np.arange(2 * 3 * 9 * 8, dtype=f32).reshape(2, 3, 9, 8) / 100
    w = np.linspace(-1, 1, 4 * 3 * 3 * 2, dtype=f32).reshape(4, 3, 3, 2)
    got = K.conv2d_forward(x, w, stride=(2, 1), padding=(1, 0))
    want = K.conv2d_forward(np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0))), w, stride=(2, 1))
    assert got.shape == (2, 4, 5, 7)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
