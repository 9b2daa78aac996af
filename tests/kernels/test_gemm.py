import numpy as np
import pytest

import convnet as cn
from tests.helpers import assert_close

K = cn.kernels

SHAPES = [(1, 1, 1), (3, 5, 7), (17, 33, 65), (14, 32, 256), (15, 31, 257), (130, 70, 300),
          (300, 257, 513), (6, 784, 25), (64, 3, 1000)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_matches_float64_numpy(m, n, k, trans_a, trans_b, backend, dtype, rng):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    expected = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)
    c = K.gemm(a, b, trans_a=trans_a, trans_b=trans_b, backend=backend)
    assert c.dtype == dtype and c.shape == (m, n)
    assert_close(c, expected, dtype, "gemm", scale=max(1.0, k / 256))


def test_gemm_alpha_beta_in_place(backend, dtype, rng):
    a = rng.standard_normal((37, 41)).astype(dtype)
    b = rng.standard_normal((41, 29)).astype(dtype)
    c0 = rng.standard_normal((37, 29)).astype(dtype)
    c = c0.copy()
    out = K.gemm(a, b, c, alpha=0.5, beta=-2.0, backend=backend)
    assert out is c
    assert_close(c, 0.5 * (a.astype(np.float64) @ b) - 2.0 * c0, dtype, "alpha/beta")


def test_gemm_beta_zero_ignores_nan_in_c(backend, rng):
    a = rng.standard_normal((20, 30))
    b = rng.standard_normal((30, 40))
    c = np.full((20, 40), np.nan)
    K.gemm(a, b, c, beta=0.0, backend=backend)
    assert_close(c, a @ b, np.float64, "beta=0")


def test_gemm_empty_inner_dimension(backend):
    a = np.zeros((3, 0), np.float32)
    b = np.zeros((0, 4), np.float32)
    np.testing.assert_array_equal(K.gemm(a, b, backend=backend), np.zeros((3, 4)))


def test_gemm_nan_propagates(backend):
    a = np.ones((4, 4), np.float32)
    a[1, 2] = np.nan
    c = K.gemm(a, np.ones((4, 4), np.float32), backend=backend)
    assert np.isnan(c[1]).all() and np.isfinite(np.delete(c, 1, axis=0)).all()


def test_gemm_thread_counts_agree(rng):
    if not cn.backends()["native"]["available"]:
        pytest.skip("native backend unavailable")
    a = rng.standard_normal((257, 300)).astype(np.float32)
    b = rng.standard_normal((300, 190)).astype(np.float32)
    before = cn.get_num_threads()
    try:
        cn.set_num_threads(1)
        one = K.gemm(a, b, backend="native")
        cn.set_num_threads(2)
        two = K.gemm(a, b, backend="native")
    finally:
        cn.set_num_threads(before)
    assert_close(one, two, np.float32, "threads")


def _native_or_skip():
    if not cn.backends()["native"]["available"]:
        pytest.skip("native backend unavailable")


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("m,n,k", [(400, 1000, 600), (9, 500, 300), (203, 97, 513)])
def test_gemm_shared_packing_across_threads(threads, m, n, k, dtype, rng):
    # Several threads share one packed A (many MC blocks, several depth blocks, a ragged
    # last column chunk): every element must still match the float64 product.
    _native_or_skip()
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    expected = 0.5 * (a.astype(np.float64) @ b) - 2.0 * c
    before = cn.get_num_threads()
    try:
        cn.set_num_threads(threads)
        for _ in range(2):  # the second call reuses the shared buffer of the first
            out = K.gemm(a, b, c.copy(), alpha=0.5, beta=-2.0, backend="native")
            assert_close(out, expected, dtype, "gemm")
    finally:
        cn.set_num_threads(before)


def test_gemm_concurrent_calls_from_python_threads(rng):
    # Calls that overlap (the GIL is released) cannot share the packed-A buffer: each must
    # still get its own product.
    _native_or_skip()
    import threading

    pairs = [(rng.standard_normal((300, 400)).astype(np.float32),
              rng.standard_normal((400, 350)).astype(np.float32)) for _ in range(4)]
    results = [None] * len(pairs)
    before = cn.get_num_threads()

    def work(i):
        a, b = pairs[i]
        for _ in range(5):
            results[i] = K.gemm(a, b, backend="native")

    try:
        cn.set_num_threads(2)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pairs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        cn.set_num_threads(before)
    for (a, b), got in zip(pairs, results):
        assert_close(got, a.astype(np.float64) @ b, np.float32, "gemm")


@pytest.mark.parametrize("m,n,k", [(4, 4, 4), (1, 7, 3), (32, 32, 32), (33, 32, 32), (5, 300, 40)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul_small_and_large_products(m, n, k, trans_a, trans_b, dtype, rng):
    # Below a size threshold matmul hands the product to NumPy, above it to the GEMM
    # kernel; the shapes straddle the threshold (32x32x32) and both must be right.
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    expected = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)
    got = K.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    assert got.shape == (m, n) and got.dtype == dtype
    assert_close(got, expected, dtype, "matmul")
