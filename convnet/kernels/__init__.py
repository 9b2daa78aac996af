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

# Transposed convolution (on the convolution kernels) and upsampling.
__all__ += [
    "conv_transpose2d_output_shape",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward_data",
    "conv_transpose2d_backward_weight",
    "upsample_nearest2d_forward",
    "upsample_nearest2d_backward",
    "upsample_bilinear2d_forward",
    "upsample_bilinear2d_backward",
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
    if y.size:  # an empty batch (N = 0) has nothing to compute, as in PyTorch
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
    x_shape = ck.shape4("x_shape", x_shape, empty_batch=True)
    y_shape, args = _conv_geometry(x_shape, w.shape, stride, padding, dilation)
    dy = _check_dy(dy, y_shape, w.dtype)
    impl = _pick(backend, dy=dy, w=w)
    dx = ck.xp_of(w).empty(x_shape, dtype=w.dtype)
    if dx.size:  # an empty batch has an empty gradient, as in PyTorch
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
    if x.shape[0] == 0:  # a sum over an empty batch, as in PyTorch
        return ck.xp_of(x).zeros(w_shape, dtype=x.dtype)
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


# --------------------------------------------------------------------------- recurrent cells
#
# One time step of an LSTM, GRU or plain RNN cell over a batch, gate order as PyTorch's
# (LSTM i, f, g, o; GRU r, z, n). The cell kernels take the gate pre-activations, i.e. the
# two projections x W_ih^T and h W_hh^T are GEMMs done by the caller; the recurrence
# functions below run a whole sequence that way: the per-step GEMM, then the fused cell.

__all__ += [
    "RNN_MODES",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "gru_cell_forward",
    "gru_cell_backward",
    "rnn_cell_forward",
    "rnn_cell_backward",
    "Recurrence",
    "rnn_recurrence_forward",
    "rnn_recurrence_backward",
]

RNN_MODES = ("lstm", "gru", "rnn_tanh", "rnn_relu")
RNN_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _matrix(name, a, dtype, rows, cols, what):
    a = ck.float_array(name, a, dtype)
    if a.ndim != 2 or (rows is not None and a.shape[0] != rows) or a.shape[1] != cols:
        want = f"({rows if rows is not None else 'B'}, {cols})"
        raise ValueError(f"{name}: expected shape {want} {what}, got {tuple(a.shape)}")
    return a


def _state(name, a, dtype=None):
    a = ck.float_array(name, a, dtype)
    ck.ndim(name, a, 2, "(batch, hidden)")
    return a


def _bias(name, v, n, dtype, xp):
    if v is None:
        return xp.zeros(n, dtype)
    v = ck.float_array(name, v, dtype)
    if tuple(v.shape) != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {tuple(v.shape)}")
    return v


def lstm_cell_forward(gates, c_prev, bias=None, *, backend=None):
    """One LSTM step: gates (B, 4H) pre-activations (x W_ih^T + h W_hh^T, in the order i, f,
    g, o), c_prev (B, H), bias (4H,) = b_ih + b_hh or None -> (h, c, act): h, c (B, H) and
    the activated gates act (B, 4H), which :func:`lstm_cell_backward` needs."""
    c_prev = _state("c_prev", c_prev)
    b, h = c_prev.shape
    gates = _matrix("gates", gates, c_prev.dtype, b, 4 * h, "(batch, 4 * hidden)")
    xp = ck.xp_of(c_prev)
    bias = _bias("bias", bias, 4 * h, c_prev.dtype, xp)
    impl = _pick(backend, gates=gates, c_prev=c_prev, bias=bias)
    out_h, out_c, act = xp.empty_like(c_prev), xp.empty_like(c_prev), xp.empty_like(gates)
    impl.lstm_cell_forward(gates, bias, c_prev, out_h, out_c, act)
    return out_h, out_c, act


def lstm_cell_backward(act, c_prev, c, dh, dc=None, *, backend=None):
    """Gradients of one LSTM step: act (B, 4H) from the forward, c_prev, c (B, H), dh (B, H)
    and dc (B, H, the gradient reaching c from later steps; None = 0) -> (dgates (B, 4H)
    w.r.t. the pre-activations, dc_prev (B, H), db (4H,) = dgates summed over the batch)."""
    c_prev = _state("c_prev", c_prev)
    b, h = c_prev.shape
    dt = c_prev.dtype
    act = _matrix("act", act, dt, b, 4 * h, "(batch, 4 * hidden)")
    c = _matrix("c", c, dt, b, h, "(batch, hidden)")
    dh = _matrix("dh", dh, dt, b, h, "(batch, hidden)")
    xp = ck.xp_of(c_prev)
    dc = xp.zeros_like(c_prev) if dc is None else _matrix("dc", dc, dt, b, h, "(batch, hidden)")
    impl = _pick(backend, act=act, c_prev=c_prev, c=c, dh=dh, dc=dc)
    dgates, dc_prev, db = xp.empty_like(act), xp.empty_like(c_prev), xp.empty(4 * h, dt)
    impl.lstm_cell_backward(act, c_prev, c, dh, dc, dgates, dc_prev, db, False)
    return dgates, dc_prev, db


def gru_cell_forward(gx, gh, h_prev, b_ih=None, b_hh=None, *, backend=None):
    """One GRU step: gx = x W_ih^T and gh = h_prev W_hh^T (B, 3H, order r, z, n), h_prev
    (B, H), b_ih, b_hh (3H,) or None -> (h (B, H), act (B, 4H) = r, z, n, W_hn h + b_hn).
    The biases are separate because r multiplies the n part of W_hh h + b_hh."""
    h_prev = _state("h_prev", h_prev)
    b, h = h_prev.shape
    dt = h_prev.dtype
    gx = _matrix("gx", gx, dt, b, 3 * h, "(batch, 3 * hidden)")
    gh = _matrix("gh", gh, dt, b, 3 * h, "(batch, 3 * hidden)")
    xp = ck.xp_of(h_prev)
    b_ih = _bias("b_ih", b_ih, 3 * h, dt, xp)
    b_hh = _bias("b_hh", b_hh, 3 * h, dt, xp)
    impl = _pick(backend, gx=gx, gh=gh, b_ih=b_ih, b_hh=b_hh, h_prev=h_prev)
    out, act = xp.empty_like(h_prev), xp.empty((b, 4 * h), dt)
    impl.gru_cell_forward(gx, gh, b_ih, b_hh, h_prev, out, act)
    return out, act


def gru_cell_backward(act, h_prev, dh, *, backend=None):
    """Gradients of one GRU step -> (dgx, dgh (B, 3H) w.r.t. gx and gh + b_hh, dh_prev (B, H)
    through the z path only (add dgh @ W_hh for the rest), dbx, dbh (3H,) batch sums)."""
    h_prev = _state("h_prev", h_prev)
    b, h = h_prev.shape
    dt = h_prev.dtype
    act = _matrix("act", act, dt, b, 4 * h, "(batch, 4 * hidden)")
    dh = _matrix("dh", dh, dt, b, h, "(batch, hidden)")
    impl = _pick(backend, act=act, h_prev=h_prev, dh=dh)
    xp = ck.xp_of(h_prev)
    dgx, dgh = xp.empty((b, 3 * h), dt), xp.empty((b, 3 * h), dt)
    dh_prev, dbx, dbh = xp.empty_like(h_prev), xp.empty(3 * h, dt), xp.empty(3 * h, dt)
    impl.gru_cell_backward(act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh, False)
    return dgx, dgh, dh_prev, dbx, dbh


def _relu_flag(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity == "relu"


def rnn_cell_forward(pre, nonlinearity="tanh", bias=None, *, backend=None):
    """One plain RNN step: pre (B, H) = x W_ih^T + h W_hh^T, bias (H,) = b_ih + b_hh or
    None -> h = tanh(pre + bias) or relu(pre + bias)."""
    relu = _relu_flag(nonlinearity)
    pre = _state("pre", pre)
    xp = ck.xp_of(pre)
    bias = _bias("bias", bias, pre.shape[1], pre.dtype, xp)
    impl = _pick(backend, pre=pre, bias=bias)
    out = xp.empty_like(pre)
    impl.rnn_cell_forward(pre, bias, out, relu)
    return out


def rnn_cell_backward(h, dh, nonlinearity="tanh", *, backend=None):
    """h (B, H) the step's output, dh (B, H) -> (dpre (B, H), db (H,) batch sums)."""
    relu = _relu_flag(nonlinearity)
    h = _state("h", h)
    dh = _matrix("dh", dh, h.dtype, h.shape[0], h.shape[1], "(batch, hidden)")
    impl = _pick(backend, h=h, dh=dh)
    xp = ck.xp_of(h)
    dpre, db = xp.empty_like(h), xp.empty(h.shape[1], h.dtype)
    impl.rnn_cell_backward(h, dh, dpre, db, relu, False)
    return dpre, db


class Recurrence:
    """What :func:`rnn_recurrence_forward` keeps for the backward pass.

    ``hbuf`` (T+1, B, H) holds the hidden states in time order plus the initial state: h0 at
    index 0 and h_t at t+1 going forward; h_t at t and h0 at T in reverse. ``cbuf`` is the
    same for the LSTM's cell state. ``act`` (T, B, *) the saved gate activations.
    ``outputs`` and ``previous`` are the (T, B, H) views of hbuf holding h_t and the state
    each step started from.
    """

    __slots__ = ("mode", "reverse", "hbuf", "cbuf", "act")

    def __init__(self, mode, reverse, hbuf, cbuf, act):
        self.mode, self.reverse, self.hbuf, self.cbuf, self.act = mode, reverse, hbuf, cbuf, act

    def _slots(self):
        t = self.hbuf.shape[0] - 1
        return (slice(0, t), slice(1, t + 1)) if self.reverse else (slice(1, t + 1), slice(0, t))

    @property
    def outputs(self):
        return self.hbuf[self._slots()[0]]

    @property
    def previous(self):
        return self.hbuf[self._slots()[1]]

    @property
    def h_n(self):
        return self.hbuf[0 if self.reverse else -1]

    @property
    def c_n(self):
        return None if self.cbuf is None else self.cbuf[0 if self.reverse else -1]


def _check_mode(mode):
    if mode not in RNN_MODES:
        raise ValueError(f"mode: expected one of {RNN_MODES}, got {mode!r}")
    return RNN_GATES[mode]


def rnn_recurrence_forward(mode, xproj, w_hh, h0, c0=None, b_ih=None, b_hh=None,
                           reverse=False, *, hbuf=None, backend=None):
    """Run one direction of a recurrent layer over a whole sequence.

    mode: "lstm", "gru", "rnn_tanh" or "rnn_relu" (G = 4, 3, 1, 1 gates).
    xproj (T, B, G*H): the input projections x_t W_ih^T of every step, computed beforehand
    as one GEMM, without bias: the cell kernels add b_ih and b_hh (G*H,) (None = zeros),
    which spares the big GEMM a pass over its output. xproj is consumed: it is overwritten
    (LSTM: with the activated gates, which backward keeps).
    w_hh (G*H, H); h0 (B, H); c0 (B, H) for the LSTM. reverse runs t = T-1 .. 0.
    hbuf: optional C-contiguous (T+1, B, H) array to hold the states (e.g. part of a
    preallocated output). Each step is one GEMM accumulating h_{t-1} W_hh^T onto the
    projections and one fused cell kernel. Returns a :class:`Recurrence`.
    """
    g = _check_mode(mode)
    xproj = ck.float_array("xproj", xproj)
    ck.ndim("xproj", xproj, 3, "(seq, batch, gates * hidden)")
    dt = xproj.dtype
    t_len, b = xproj.shape[:2]
    h0 = _state("h0", h0, dt)
    h = h0.shape[1]
    if h0.shape[0] != b or xproj.shape[2] != g * h:
        raise ValueError(f"xproj: expected shape ({t_len}, {h0.shape[0]}, {g * h}) for {mode} "
                         f"with h0 of shape {tuple(h0.shape)}, got {tuple(xproj.shape)}")
    if t_len < 1:
        raise ValueError("xproj: the sequence is empty (length 0)")
    w_hh = _matrix("w_hh", w_hh, dt, g * h, h, "(gates * hidden, hidden)")
    xp = ck.xp_of(xproj)
    if mode == "lstm":
        if c0 is None:
            raise ValueError("c0: the LSTM needs an initial cell state")
        c0 = _matrix("c0", c0, dt, b, h, "(batch, hidden)")
    b_ih = _bias("b_ih", b_ih, g * h, dt, xp)
    b_hh = _bias("b_hh", b_hh, g * h, dt, xp)
    if hbuf is None:
        hbuf = xp.empty((t_len + 1, b, h), dt)
    elif (tuple(hbuf.shape) != (t_len + 1, b, h) or hbuf.dtype != dt
          or not hbuf.flags.c_contiguous):
        raise ValueError(f"hbuf: expected a C-contiguous {dt} array of shape "
                         f"{(t_len + 1, b, h)}, got {hbuf.dtype} {tuple(hbuf.shape)}")
    impl = _pick(backend, xproj=xproj, w_hh=w_hh, h0=h0)
    first = t_len if reverse else 0
    hbuf[first] = h0
    cbuf = act = None
    if mode == "lstm":
        cbuf = xp.empty((t_len + 1, b, h), dt)
        cbuf[first] = c0
    elif mode == "gru":
        act = xp.empty((t_len, b, 4 * h), dt)
    impl.rnn_recurrence_forward(RNN_MODES.index(mode), xproj, w_hh, b_ih, b_hh, hbuf, cbuf,
                                act, bool(reverse))
    if mode == "lstm":
        act = xproj
    return Recurrence(mode, bool(reverse), hbuf, cbuf, act)


def rnn_recurrence_backward(rec, w_hh, dh_out=None, dh_n=None, dc_n=None, *, dH=None,
                            backend=None):
    """Backpropagation through time for :func:`rnn_recurrence_forward`.

    rec: its :class:`Recurrence`; w_hh (G*H, H); dh_out (T, B, H): the gradient of the
    layer's outputs h_t (any strides; None = 0); dh_n, dc_n (B, H): gradients of the final
    states (None = 0). Returns ``(dgx, dgh, dh0, dc0, dbx, dbh)``: dgx (T, B, G*H) the
    gradient of the input projections (its transpose times x is dW_ih, times W_ih is dx),
    dgh (T, B, G*H) that of the hidden projections (dgh^T @ rec.previous is dW_hh; the same
    array as dgx except for the GRU), dh0, dc0 (B, H) (dc0 None but for the LSTM), dbx,
    dbh (G*H,) the gradients of b_ih and b_hh.

    dH: instead of dh_out, a C-contiguous (T+1, B, H) array laid out as ``rec.hbuf`` that
    already holds the output gradients in the output slots; it is used as the work buffer
    and overwritten (this spares a copy when the caller owns such an array).
    """
    mode = rec.mode
    g = _check_mode(mode)
    hbuf = rec.hbuf
    t_len, b, h = hbuf.shape[0] - 1, hbuf.shape[1], hbuf.shape[2]
    dt = hbuf.dtype
    w_hh = _matrix("w_hh", w_hh, dt, g * h, h, "(gates * hidden, hidden)")
    impl = _pick(backend, hbuf=hbuf, w_hh=w_hh)
    xp = ck.xp_of(hbuf)
    out_slots, prev_slots = rec._slots()
    h0_slot = t_len if rec.reverse else 0
    last_slot = 0 if rec.reverse else t_len
    if dH is not None:
        if dh_out is not None:
            raise ValueError("dH: give the output gradients either as dh_out or in dH")
        if (tuple(dH.shape) != (t_len + 1, b, h) or dH.dtype != dt
                or not dH.flags.c_contiguous or not dH.flags.writeable):
            raise ValueError(f"dH: expected a writable C-contiguous {dt} array of shape "
                             f"{(t_len + 1, b, h)}, got {dH.dtype} {tuple(dH.shape)}")
    else:
        dH = xp.empty((t_len + 1, b, h), dt)
        dH[out_slots] = 0
    if dh_out is not None:
        if tuple(dh_out.shape) != (t_len, b, h):
            raise ValueError(f"dh_out: expected shape {(t_len, b, h)}, got "
                             f"{tuple(dh_out.shape)}")
        dH[out_slots] = dh_out
    dH[h0_slot] = 0
    for name, v in (("dh_n", dh_n), ("dc_n", dc_n)):
        if v is not None and tuple(v.shape) != (b, h):
            raise ValueError(f"{name}: expected shape {(b, h)}, got {tuple(v.shape)}")
    if dh_n is not None:
        dH[last_slot] += dh_n
    dgx = xp.empty((t_len, b, g * h), dt)
    dgh = xp.empty_like(dgx) if mode == "gru" else dgx
    dbx = xp.empty(g * h, dt)
    dbh = xp.empty(g * h, dt) if mode == "gru" else dbx
    dc0 = None
    if mode == "lstm":
        dc0 = xp.zeros((b, h), dt) if dc_n is None else xp.array(dc_n, dtype=dt, order="C")
    impl.rnn_recurrence_backward(RNN_MODES.index(mode), w_hh, hbuf, rec.cbuf, rec.act, dH, dc0,
                                 dgx, dgh, dbx, dbh, rec.reverse)
    return dgx, dgh, dH[h0_slot], dc0, dbx, dbh

# --------------------------------------------------------------------------- transposed conv
#
# A transposed convolution is the convolution's data gradient used as a forward pass, so
# it runs on the same three kernels with the roles swapped (which is also how the CUDA
# backend gets it, when its module has the conv2d kernels): for x (N, Cin, H, W) and
# w (Cin, Cout, R, S), viewing w as the filters of a convolution Cout -> Cin,
#   forward        y  = conv2d_backward_data(dy=x, w)            (N, Cout, Ho, Wo)
#   data gradient  dx = conv2d_forward(x=dy, w)                  (N, Cin, H, W)
#   weight grad.   dw = conv2d_backward_weight(dy=x, x=dy)       (Cin, Cout, R, S)
# The kernels read the convolution's output size (here H, W) from the arrays, so
# output_padding needs no special case: it only makes the "input" Ho x Wo larger.


def _convt_geometry(x_shape, w_shape, stride, padding, output_padding, dilation):
    n, c, h, w = x_shape
    cw, k, r, s = w_shape
    if cw != c:
        raise ValueError(
            f"w: has {cw} input channels (shape {tuple(w_shape)}, laid out (Cin, Cout, R, S)) "
            f"but x has {c} (shape {tuple(x_shape)})"
        )
    if isinstance(padding, str):
        raise ValueError(f"padding: a transposed convolution takes an int or a pair, "
                         f"got {padding!r}")
    sh, sw = ck.pair("stride", stride)
    dh, dw = ck.pair("dilation", dilation)
    ph, pw = ck.pair("padding", padding, positive=False)
    oph, opw = ck.pair("output_padding", output_padding, positive=False)
    for o, st, d in ((oph, sh, dh), (opw, sw, dw)):
        if o >= st and o >= d:
            raise ValueError(
                f"output_padding: must be smaller than the stride or the dilation, got "
                f"output_padding {(oph, opw)} with stride {(sh, sw)}, dilation {(dh, dw)}"
            )
    ho = (h - 1) * sh - 2 * ph + dh * (r - 1) + oph + 1
    wo = (w - 1) * sw - 2 * pw + dw * (s - 1) + opw + 1
    if ho < 1 or wo < 1:
        raise ValueError(
            f"padding: the output would be {ho}x{wo} for input {h}x{w}, kernel {r}x{s}, "
            f"stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)}"
        )
    return (n, k, ho, wo), (sh, sw, ph, pw, dh, dw)


def conv_transpose2d_output_shape(x_shape, w_shape, stride=1, padding=0, output_padding=0,
                                  dilation=1):
    """(N, Cout, Ho, Wo) with Ho = (H-1)*sh - 2*ph + dh*(R-1) + oph + 1 (PyTorch's rule)."""
    x_shape = ck.shape4("x_shape", x_shape)
    w_shape = ck.shape4("w_shape", w_shape)
    return _convt_geometry(x_shape, w_shape, stride, padding, output_padding, dilation)[0]


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1,
                             *, backend=None):
    """Transposed convolution (PyTorch's ``conv_transpose2d``, groups=1): every input pixel
    scatters ``w[c]`` times its value into the output.

    x (N, Cin, H, W), w (Cin, Cout, R, S), b (Cout,) or None -> y (N, Cout, Ho, Wo).
    """
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, Cin, H, W)")
    w = ck.float_array("w", w, x.dtype)
    ck.ndim("w", w, 4, "(Cin, Cout, R, S)")
    if b is not None:
        b = ck.float_array("b", b, x.dtype)
        if b.shape != (w.shape[1],):
            raise ValueError(f"b: expected shape ({w.shape[1]},) for {w.shape[1]} output "
                             f"channels, got {tuple(b.shape)}")
    y_shape, args = _convt_geometry(x.shape, w.shape, stride, padding, output_padding, dilation)
    impl = _pick(backend, x=x, w=w, b=b)
    y = ck.xp_of(x).empty(y_shape, dtype=x.dtype)
    impl.conv2d_backward_data(x, w, y, *args)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def conv_transpose2d_backward_data(dy, w, x_shape, stride=1, padding=0, output_padding=0,
                                   dilation=1, *, backend=None):
    """Gradient of the transposed convolution with respect to its input: the convolution
    of dy with the same filters.

    dy (N, Cout, Ho, Wo), w (Cin, Cout, R, S), x_shape (N, Cin, H, W) -> dx (N, Cin, H, W).
    """
    w = ck.float_array("w", w)
    ck.ndim("w", w, 4, "(Cin, Cout, R, S)")
    x_shape = ck.shape4("x_shape", x_shape)
    y_shape, args = _convt_geometry(x_shape, w.shape, stride, padding, output_padding, dilation)
    dy = _check_dy(dy, y_shape, w.dtype)
    impl = _pick(backend, dy=dy, w=w)
    dx = ck.xp_of(w).empty(x_shape, dtype=w.dtype)
    impl.conv2d_forward(dy, w, None, dx, *args)
    return dx


def conv_transpose2d_backward_weight(dy, x, w_shape, stride=1, padding=0, output_padding=0,
                                     dilation=1, *, backend=None):
    """Gradient of the transposed convolution with respect to its filters (summed over
    the batch).

    dy (N, Cout, Ho, Wo), x (N, Cin, H, W), w_shape (Cin, Cout, R, S) -> dw (Cin, Cout, R, S).
    """
    x = ck.float_array("x", x)
    ck.ndim("x", x, 4, "(N, Cin, H, W)")
    w_shape = ck.shape4("w_shape", w_shape)
    y_shape, args = _convt_geometry(x.shape, w_shape, stride, padding, output_padding, dilation)
    dy = _check_dy(dy, y_shape, x.dtype)
    impl = _pick(backend, dy=dy, x=x)
    dw = ck.xp_of(x).empty(w_shape, dtype=x.dtype)
    impl.conv2d_backward_weight(x, dy, dw, *args)
    return dw


# --------------------------------------------------------------------------- upsampling
#
# PyTorch's rules (``F.interpolate``): ``scales`` are the scale factors the user gave, which
# PyTorch uses for the source coordinates (step 1/scale) instead of in/out when the output
# size came from them; None means the size was given. Nearest: src = min(floor(dst * step),
# in - 1). Bilinear, align_corners=False: src = max((dst + 0.5) * step - 0.5, 0);
# align_corners=True: src = dst * (in - 1) / (out - 1).


def _upsample_scales(scales):
    if scales is None:
        return 0.0, 0.0
    if not (isinstance(scales, (tuple, list)) and len(scales) == 2):
        raise ValueError(f"scales: expected None or a pair (scale_h, scale_w), got {scales!r}")
    out = []
    for v in scales:
        if v is None:
            out.append(0.0)
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"scales: expected numbers, got {scales!r}") from None
        if not (f > 0 and np.isfinite(f)):
            raise ValueError(f"scales: must be positive and finite, got {scales!r}")
        out.append(f)
    return out[0], out[1]


def _upsample_input(name, a, what):
    a = ck.float_array(name, a)
    ck.ndim(name, a, 4, what)
    if min(a.shape) < 1:
        raise ValueError(f"{name}: expected non-empty (N, C, H, W), got shape {tuple(a.shape)}")
    return a


def _upsample_forward(kind, x, output_size, extra, scales, backend):
    x = _upsample_input("x", x, "(N, C, H, W)")
    p, q = ck.pair("output_size", output_size)
    sh, sw = _upsample_scales(scales)
    fn = getattr(_pick(backend, x=x), f"upsample_{kind}2d_forward")
    y = ck.xp_of(x).empty((x.shape[0], x.shape[1], p, q), dtype=x.dtype)
    fn(x, y, *extra, sh, sw)
    return y


def _upsample_backward(kind, dy, x_shape, extra, scales, backend):
    dy = _upsample_input("dy", dy, "(N, C, P, Q)")
    x_shape = ck.shape4("x_shape", x_shape)
    if tuple(dy.shape[:2]) != tuple(x_shape[:2]):
        raise ValueError(f"dy: batch/channels {tuple(dy.shape[:2])} differ from x_shape's "
                         f"{tuple(x_shape[:2])}")
    sh, sw = _upsample_scales(scales)
    fn = getattr(_pick(backend, dy=dy), f"upsample_{kind}2d_backward")
    dx = ck.xp_of(dy).empty(x_shape, dtype=dy.dtype)
    fn(dy, dx, *extra, sh, sw)
    return dx


def upsample_nearest2d_forward(x, output_size, scales=None, *, backend=None):
    """Nearest-neighbour upsampling (or downsampling) to ``output_size`` (P, Q).

    x (N, C, H, W) -> y (N, C, P, Q). ``scales``: the scale factors (sh, sw) when the size
    came from them (PyTorch then maps coordinates with them), else None.
    """
    return _upsample_forward("nearest", x, output_size, (), scales, backend)


def upsample_nearest2d_backward(dy, x_shape, scales=None, *, backend=None):
    """dy (N, C, P, Q) -> dx (N, C, H, W): each input pixel sums the outputs that copied it."""
    return _upsample_backward("nearest", dy, x_shape, (), scales, backend)


def upsample_bilinear2d_forward(x, output_size, align_corners=False, scales=None, *,
                                backend=None):
    """Bilinear interpolation to ``output_size`` (P, Q), PyTorch's coordinates.

    x (N, C, H, W) -> y (N, C, P, Q).
    """
    return _upsample_forward("bilinear", x, output_size, (bool(align_corners),), scales,
                             backend)


def upsample_bilinear2d_backward(dy, x_shape, align_corners=False, scales=None, *,
                                 backend=None):
    """dy (N, C, P, Q) -> dx (N, C, H, W) for :func:`upsample_bilinear2d_forward`."""
    return _upsample_backward("bilinear", dy, x_shape, (bool(align_corners),), scales,
                              backend)
