"""Array-level kernels: NumPy in, NumPy out (CuPy in, CuPy out on the ``cuda`` backend).

Every function takes ``backend=None|"native"|"numba"|"cuda"``; ``None`` picks the
compiled C++ kernels when they are built, else the Numba ones, and ``cuda`` for CuPy
arrays. Layout is NCHW; float32 and float64 are supported (all float inputs of a call must
share the dtype). Non-contiguous inputs are copied to C order first. Bad arguments raise
ValueError/TypeError naming the argument before any kernel runs.

Padding for convolutions: an int, ``(ph, pw)``, ``((top, bottom), (left, right))``,
``"valid"`` or ``"same"`` (TensorFlow's SAME: output = ceil(input / stride)). Pooling
follows PyTorch: ``stride=None`` means the kernel size, padding is at most half the
kernel, max pooling pads with -inf and returns flat ``h * W + w`` indices per plane,
average pooling counts the zero padding in the divisor unless
``count_include_pad=False`` (PyTorch's default is True).
"""

from __future__ import annotations

import numpy as np

from . import _checks as ck
from ._registry import backends, default_cpu, require, use_backend

__all__ = [
    "backends",
    "use_backend",
    "gemm",
    "conv2d_output_shape",
    "conv2d_forward",
    "conv2d_backward_data",
    "conv2d_backward_weight",
    "conv2d_backward_bias",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "batch_norm_forward_training",
    "batch_norm_forward_inference",
    "batch_norm_backward",
    "activation_forward",
    "activation_backward",
    # cuda backend
    "has_kernels_for",
]


def _pick(backend, **arrays):
    """The backend module for these arrays: the single place where devices are dispatched."""
    ck.same_device(**arrays)
    on_gpu = any(ck.is_cupy(a) for a in arrays.values() if a is not None)
    if backend is None:
        backend = "cuda" if on_gpu else default_cpu()
    elif backend not in ("native", "numba", "cuda"):
        raise ValueError(
            f"backend: unknown backend {backend!r}; expected None, 'native', 'numba' or 'cuda'"
        )
    if on_gpu and backend != "cuda":
        raise ValueError(f"backend: {backend!r} runs on NumPy arrays, but the inputs are CuPy")
    if backend == "cuda" and not on_gpu:
        name = next(iter(arrays))
        raise ValueError(
            f"backend: 'cuda' needs CuPy arrays, but {name} is a NumPy array "
            "(move it with cupy.asarray)"
        )
    return require(backend)


def has_kernels_for(a) -> bool:
    """True when a backend can run this array's kernels: always for NumPy arrays, for
    CuPy arrays when the cuda backend is available (else callers use array code)."""
    if not ck.is_cupy(a):
        return True
    from ._registry import get

    return get("cuda") is not None


# --------------------------------------------------------------------------- GEMM


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, backend=None):
    """``alpha * op(a) @ op(b) + beta * c`` with op = transpose when requested.

    a: (M, K), or (K, M) with ``trans_a``; b: (K, N), or (N, K) with ``trans_b``.
    ``c`` (M, N), when given, is updated in place and returned (it must be C-contiguous
    with the inputs' dtype); otherwise a new array is returned (``beta`` then ignored).
    """
    a = ck.float_array("a", a)
    b = ck.float_array("b", b, a.dtype)
    ck.ndim("a", a, 2, "(matrix)")
    ck.ndim("b", b, 2, "(matrix)")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != kb:
        raise ValueError(
            f"b: op(a) is {m}x{k} but op(b) is {kb}x{n}; inner dimensions must match"
        )
    if c is None:
        c = ck.xp_of(a).empty((m, n), dtype=a.dtype)
        beta = 0.0
    else:
        if not (isinstance(c, np.ndarray) or ck.is_cupy(c)) or c.dtype != a.dtype:
            raise TypeError(f"c: expected a {a.dtype} array, got {getattr(c, 'dtype', type(c))}")
        if c.shape != (m, n):
            raise ValueError(f"c: expected shape {(m, n)}, got {tuple(c.shape)}")
        if not c.flags.c_contiguous:
            raise ValueError("c: must be C-contiguous (it is written in place)")
    impl = _pick(backend, a=a, b=b, c=c)
    impl.gemm(a, b, c, float(alpha), float(beta), bool(trans_a), bool(trans_b))
    return c


# --------------------------------------------------------------------------- convolution


def _conv_geometry(x_shape, w_shape, stride, padding, dilation):
    n, c, h, w = x_shape
    k, cw, r, s = w_shape
    if cw != c:
        raise ValueError(
            f"w: has {cw} input channels (shape {tuple(w_shape)}) but x has {c} "
            f"(shape {tuple(x_shape)})"
        )
    stride = ck.pair("stride", stride)
    dilation = ck.pair("dilation", dilation)
    pads = ck.conv_padding(padding, (h, w), (r, s), stride, dilation)
    p, q = ck.conv_output_hw((h, w), (r, s), stride, pads, dilation, "w")
    args = (stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1])
    return (n, k, p, q), args


def conv2d_output_shape(x_shape, w_shape, stride=1, padding=0, dilation=1):
    """Output shape (N, K, P, Q) of :func:`conv2d_forward` for these shapes and options."""
    x_shape = ck.shape4("x_shape", x_shape)
    w_shape = ck.shape4("w_shape", w_shape)
    return _conv_geometry(x_shape, w_shape, stride, padding, dilation)[0]


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, *, backend=None):
    """y[n,k] = b[k] + sum_c x[n,c] (*) w[k,c] (cross-correlation).

    x (N, C, H, W), w (K, C, R, S), b (K,) or None -> y (N, K, P, Q).
    """
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, C, H, W)")
    w = ck.float_array("w", w, x.dtype)
    ck.ndim("w", w, 4, "(K, C, R, S)")
    if b is not None:
        b = ck.float_array("b", b, x.dtype)
        if b.shape != (w.shape[0],):
            raise ValueError(f"b: expected shape ({w.shape[0]},) for {w.shape[0]} filters, "
                             f"got {tuple(b.shape)}")
    y_shape, args = _conv_geometry(x.shape, w.shape, stride, padding, dilation)
    impl = _pick(backend, x=x, w=w, b=b)
    y = ck.xp_of(x).empty(y_shape, dtype=x.dtype)
    impl.conv2d_forward(x, w, b, y, *args)
    return y


def _check_dy(dy, expected, dtype):
    dy = ck.float_array("dy", dy, dtype)
    if tuple(dy.shape) != tuple(expected):
        raise ValueError(f"dy: expected the output shape {tuple(expected)}, got {tuple(dy.shape)}")
    return dy


def conv2d_backward_data(dy, w, x_shape, stride=1, padding=0, dilation=1, *, backend=None):
    """Gradient of the convolution with respect to its input.

    dy (N, K, P, Q), w (K, C, R, S), x_shape (N, C, H, W) -> dx (N, C, H, W).
    """
    w = ck.float_array("w", w)
    ck.ndim("w", w, 4, "(K, C, R, S)")
    x_shape = ck.shape4("x_shape", x_shape)
    y_shape, args = _conv_geometry(x_shape, w.shape, stride, padding, dilation)
    dy = _check_dy(dy, y_shape, w.dtype)
    impl = _pick(backend, dy=dy, w=w)
    dx = ck.xp_of(w).empty(x_shape, dtype=w.dtype)
    impl.conv2d_backward_data(dy, w, dx, *args)
    return dx


def conv2d_backward_weight(dy, x, w_shape, stride=1, padding=0, dilation=1, *, backend=None):
    """Gradient of the convolution with respect to its filters (summed over the batch).

    dy (N, K, P, Q), x (N, C, H, W), w_shape (K, C, R, S) -> dw (K, C, R, S).
    """
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, C, H, W)")
    w_shape = ck.shape4("w_shape", w_shape)
    y_shape, args = _conv_geometry(x.shape, w_shape, stride, padding, dilation)
    dy = _check_dy(dy, y_shape, x.dtype)
    impl = _pick(backend, dy=dy, x=x)
    dw = ck.xp_of(x).empty(w_shape, dtype=x.dtype)
    impl.conv2d_backward_weight(dy, x, dw, *args)
    return dw


def conv2d_backward_bias(dy, *, backend=None):
    """Gradient with respect to the bias: dy (N, K, P, Q) summed to (K,)."""
    dy = ck.float_array("dy", dy)
    ck.ndim("dy", dy, 4, "(N, K, P, Q)")
    impl = _pick(backend, dy=dy)
    db = ck.xp_of(dy).empty((dy.shape[1],), dtype=dy.dtype)
    impl.conv2d_backward_bias(dy, db)
    return db


# --------------------------------------------------------------------------- pooling


def _pool_geometry(x_shape, kernel_size, stride, padding):
    n, c, h, w = x_shape
    kh, kw = ck.pair("kernel_size", kernel_size)
    sh, sw = ck.pair("stride", kernel_size if stride is None else stride)
    ph, pw = ck.pair("padding", padding, positive=False)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(
            f"padding: must be at most half the kernel size, got padding {(ph, pw)} "
            f"for kernel {(kh, kw)}"
        )
    p, q = ck.conv_output_hw((h, w), (kh, kw), (sh, sw), (ph, ph, pw, pw), (1, 1), "kernel_size")
    return (n, c, p, q), (kh, kw, sh, sw, ph, pw)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, *, backend=None):
    """x (N, C, H, W) -> (y, indices), both (N, C, P, Q); indices are int64 ``h * W + w``."""
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, C, H, W)")
    y_shape, args = _pool_geometry(x.shape, kernel_size, stride, padding)
    impl = _pick(backend, x=x)
    xp = ck.xp_of(x)
    y = xp.empty(y_shape, dtype=x.dtype)
    indices = xp.empty(y_shape, dtype=np.int64)
    impl.max_pool2d_forward(x, y, indices, *args)
    return y, indices


def max_pool2d_backward(dy, indices, x_shape, *, backend=None):
    """dy and indices (N, C, P, Q) from the forward pass -> dx (N, C, H, W)."""
    dy = ck.float_array("dy", dy)
    ck.ndim("dy", dy, 4, "(N, C, P, Q)")
    x_shape = ck.shape4("x_shape", x_shape)
    if tuple(dy.shape[:2]) != tuple(x_shape[:2]):
        raise ValueError(f"dy: batch/channels {tuple(dy.shape[:2])} differ from x_shape's "
                         f"{tuple(x_shape[:2])}")
    if not hasattr(indices, "dtype") or indices.dtype != np.int64:
        raise TypeError(f"indices: expected the int64 array from max_pool2d_forward, got "
                        f"{getattr(indices, 'dtype', type(indices).__name__)}")
    if tuple(indices.shape) != tuple(dy.shape):
        raise ValueError(f"indices: shape {tuple(indices.shape)} differs from dy's "
                         f"{tuple(dy.shape)}")
    indices = ck.xp_of(indices).ascontiguousarray(indices)
    impl = _pick(backend, dy=dy, indices=indices)
    dx = ck.xp_of(dy).empty(x_shape, dtype=dy.dtype)
    impl.max_pool2d_backward(dy, indices, dx)
    return dx


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True, *,
                       backend=None):
    """x (N, C, H, W) -> y (N, C, P, Q), the mean of each window."""
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, C, H, W)")
    y_shape, args = _pool_geometry(x.shape, kernel_size, stride, padding)
    impl = _pick(backend, x=x)
    y = ck.xp_of(x).empty(y_shape, dtype=x.dtype)
    impl.avg_pool2d_forward(x, y, *args, bool(count_include_pad))
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True, *, backend=None):
    """dy (N, C, P, Q) -> dx (N, C, H, W) for :func:`avg_pool2d_forward`."""
    dy = ck.float_array("dy", dy)
    x_shape = ck.shape4("x_shape", x_shape)
    y_shape, args = _pool_geometry(x_shape, kernel_size, stride, padding)
    dy = _check_dy(dy, y_shape, dy.dtype)
    impl = _pick(backend, dy=dy)
    dx = ck.xp_of(dy).empty(x_shape, dtype=dy.dtype)
    impl.avg_pool2d_backward(dy, dx, *args, bool(count_include_pad))
    return dx


# --------------------------------------------------------------------------- batch norm


def _bn_view(x):
    """(N, C, H, W) or (N, C) as the kernels' (N, C, L)."""
    x = ck.float_array("x", x)
    if x.ndim not in (2, 4):
        raise ValueError(f"x: expected (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
    return x, x.reshape(x.shape[0], x.shape[1], -1)


def _per_channel(name, v, c, dtype, xp, fill):
    if v is None:
        return xp.full((c,), fill, dtype=dtype)
    v = ck.float_array(name, v, dtype)
    if tuple(v.shape) != (c,):
        raise ValueError(f"{name}: expected shape ({c},) (one value per channel), "
                         f"got {tuple(v.shape)}")
    return v


def batch_norm_forward_training(x, weight=None, bias=None, running_mean=None, running_var=None,
                                momentum=0.1, eps=1e-5, *, backend=None):
    """Normalise with the batch's statistics; returns (y, mean, invstd).

    x (N, C, H, W) or (N, C); statistics per channel. ``running_mean``/``running_var``,
    when given, are updated in place as PyTorch does: ``r = (1 - momentum) * r + momentum
    * batch_stat``, the variance unbiased (N*H*W / (N*H*W - 1)).
    """
    x, x3 = _bn_view(x)
    n, c, l_ = x3.shape
    xp = ck.xp_of(x)
    weight = _per_channel("weight", weight, c, x.dtype, xp, 1.0)
    bias = _per_channel("bias", bias, c, x.dtype, xp, 0.0)
    for name, r in (("running_mean", running_mean), ("running_var", running_var)):
        if r is not None:
            if not r.flags.c_contiguous:
                raise ValueError(f"{name}: must be C-contiguous (it is updated in place)")
            _per_channel(name, r, c, x.dtype, xp, 0.0)
    count = n * l_
    if count < 2 and running_var is not None:
        raise ValueError(f"x: shape {tuple(x.shape)} gives one value per channel; batch norm "
                         "in training needs more than one")
    impl = _pick(backend, x=x, weight=weight, bias=bias)
    y3 = xp.empty_like(x3)
    mean = xp.empty((c,), dtype=x.dtype)
    var = xp.empty((c,), dtype=x.dtype)
    invstd = xp.empty((c,), dtype=x.dtype)
    impl.batch_norm_forward_training(x3, weight, bias, y3, mean, var, invstd, float(eps))
    if running_mean is not None:
        running_mean *= 1.0 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        running_var *= 1.0 - momentum
        running_var += (momentum * count / (count - 1)) * var
    return y3.reshape(x.shape), mean, invstd


def batch_norm_forward_inference(x, running_mean, running_var, weight=None, bias=None, eps=1e-5,
                                 *, backend=None):
    """Normalise with the running statistics: x (N, C, H, W) or (N, C) -> y, same shape."""
    x, x3 = _bn_view(x)
    c = x3.shape[1]
    xp = ck.xp_of(x)
    running_mean = _per_channel("running_mean", running_mean, c, x.dtype, xp, 0.0)
    running_var = _per_channel("running_var", running_var, c, x.dtype, xp, 1.0)
    weight = _per_channel("weight", weight, c, x.dtype, xp, 1.0)
    bias = _per_channel("bias", bias, c, x.dtype, xp, 0.0)
    impl = _pick(backend, x=x, running_mean=running_mean)
    y3 = xp.empty_like(x3)
    impl.batch_norm_forward_inference(x3, weight, bias, running_mean, running_var, y3, float(eps))
    return y3.reshape(x.shape)


def batch_norm_backward(dy, x, mean, invstd, weight=None, *, backend=None):
    """Training-mode gradients: returns (dx, dweight, dbias).

    dy, x (N, C, H, W) or (N, C); mean, invstd (C,) from the forward pass.
    """
    x, x3 = _bn_view(x)
    c = x3.shape[1]
    dy = ck.float_array("dy", dy, x.dtype)
    if dy.shape != x.shape:
        raise ValueError(f"dy: shape {tuple(dy.shape)} differs from x's {tuple(x.shape)}")
    xp = ck.xp_of(x)
    mean = _per_channel("mean", mean, c, x.dtype, xp, 0.0)
    invstd = _per_channel("invstd", invstd, c, x.dtype, xp, 1.0)
    weight = _per_channel("weight", weight, c, x.dtype, xp, 1.0)
    impl = _pick(backend, dy=dy, x=x, mean=mean)
    dx3 = xp.empty_like(x3)
    dweight = xp.empty((c,), dtype=x.dtype)
    dbias = xp.empty((c,), dtype=x.dtype)
    impl.batch_norm_backward(dy.reshape(x3.shape), x3, weight, mean, invstd, dx3, dweight, dbias)
    return dx3.reshape(x.shape), dweight, dbias


# --------------------------------------------------------------------------- activations

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "tanh", "sigmoid")
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _activation_params(kind, alpha):
    if kind not in ACTIVATIONS:
        raise ValueError(f"kind: expected one of {ACTIVATIONS}, got {kind!r}")
    if kind == "selu":
        return SELU_ALPHA, SELU_SCALE
    if kind == "relu":
        return 0.0, 1.0
    default = {"leaky_relu": 0.01, "elu": 1.0}.get(kind)
    return (default if alpha is None else float(alpha)), 1.0


def activation_forward(x, kind, alpha=None, *, backend=None):
    """y = act(x), element-wise, any shape. kind: relu, leaky_relu (alpha = negative slope,
    default 0.01), elu (alpha, default 1), selu, tanh, sigmoid."""
    a, scale = _activation_params(kind, alpha)
    x = ck.float_array("x", x)
    impl = _pick(backend, x=x)
    y = ck.xp_of(x).empty_like(x)
    if kind in ("relu", "leaky_relu"):
        impl.leaky_relu_forward(x, y, a)
    elif kind in ("elu", "selu"):
        impl.elu_forward(x, y, a, scale)
    else:
        getattr(impl, f"{kind}_forward")(x, y)
    return y


def activation_backward(dy, saved, kind, alpha=None, *, backend=None):
    """dx for :func:`activation_forward`. ``saved`` is the output y for tanh and sigmoid,
    the input x for the others (what the gradient needs, as autograd keeps it)."""
    a, scale = _activation_params(kind, alpha)
    dy = ck.float_array("dy", dy)
    saved = ck.float_array("saved", saved, dy.dtype)
    if saved.shape != dy.shape:
        raise ValueError(f"saved: shape {tuple(saved.shape)} differs from dy's {tuple(dy.shape)}")
    impl = _pick(backend, dy=dy, saved=saved)
    dx = ck.xp_of(dy).empty_like(dy)
    if kind in ("relu", "leaky_relu"):
        impl.leaky_relu_backward(dy, saved, dx, a)
    elif kind in ("elu", "selu"):
        impl.elu_backward(dy, saved, dx, a, scale)
    else:
        getattr(impl, f"{kind}_backward")(dy, saved, dx)
    return dx
