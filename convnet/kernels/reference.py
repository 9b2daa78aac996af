"""Float64 NumPy reference kernels, written straight from the textbook formulas: the
oracle of `convnet verify` and of the tests (no Numba, no compiled code, no torch).

Two layers:

1. Backend-level functions with the same names and signatures as every backend
   (``convnet/kernels/_numba.py``, the C++ ``_C`` module): they compute in float64 and write
   into the preallocated outputs (cast on write), returning None::

       gemm(a, b, c, alpha, beta, trans_a, trans_b)
       conv2d_forward(x, w, b, y, sh, sw, ph, pw, dh, dw)
       conv2d_backward_data(dy, w, dx, sh, sw, ph, pw, dh, dw)
       conv2d_backward_weight(dy, x, dw_out, sh, sw, ph, pw, dh, dw)
       conv2d_backward_bias(dy, db)
       max_pool2d_forward(x, y, indices, kh, kw, sh, sw, ph, pw)
       max_pool2d_backward(dy, indices, dx)
       avg_pool2d_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad)
       avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, count_include_pad)
       batch_norm_forward_training(x, weight, bias, y, mean, var, invstd, eps)
       batch_norm_forward_inference(x, weight, bias, running_mean, running_var, y, eps)
       batch_norm_backward(dy, x, weight, mean, invstd, dx, dweight, dbias)

2. Pure helpers that allocate and return float64 results (pairs are (y, h, w) style
   tuples: ``stride``, ``pad_top_left``, ``dilation``, ``kernel`` are (h, w) pairs;
   ``out_hw=None`` means the usual symmetric-padding size
   ``(H + 2*ph - dh*(R-1) - 1) // sh + 1``)::

       gemm_ref(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False) -> c
       conv2d_output_hw(in_hw, kernel_hw, stride, pad_top_left, dilation) -> (P, Q)
       conv2d_forward_ref(x, w, b=None, stride, pad_top_left, out_hw=None, dilation) -> y
       conv2d_backward_data_ref(dy, w, x_hw, stride, pad_top_left, dilation) -> dx
       conv2d_backward_weight_ref(dy, x, kernel_hw, stride, pad_top_left, dilation) -> dw
       conv2d_backward_bias_ref(dy) -> db
       max_pool2d_forward_ref(x, kernel, stride, pad_top_left, out_hw=None) -> (y, indices)
       max_pool2d_backward_ref(dy, indices, x_hw) -> dx
       avg_pool2d_forward_ref(x, kernel, stride, pad_top_left, count_include_pad=True,
                              out_hw=None) -> y
       avg_pool2d_backward_ref(dy, x_hw, kernel, stride, pad_top_left,
                               count_include_pad=True) -> dx
       batch_norm_forward_training_ref(x, weight, bias, eps) -> (y, mean, var, invstd)
       batch_norm_forward_inference_ref(x, weight, bias, running_mean, running_var, eps) -> y
       batch_norm_backward_ref(dy, x, weight, mean, invstd) -> (dx, dweight, dbias)

   Batch norm helpers take x of shape (N, C, *) and reduce over every axis but 1.

Conventions (as for the backends): NCHW; padding is the top/left pad only and the output
size fixes the bottom/right pad; outside the input is zero for convolution and average
pooling, -inf for max pooling.
"""

import math

import numpy as np

from ._recurrence import recurrence_backward_loop, recurrence_forward_loop


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _pair(v):
    if np.ndim(v) == 0:
        return int(v), int(v)
    return int(v[0]), int(v[1])


# --------------------------------------------------------------------------------------
# GEMM
# --------------------------------------------------------------------------------------


def gemm_ref(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """alpha * op(a) @ op(b) + beta * c in float64; c is ignored when beta == 0."""
    a = _f64(a)
    b = _f64(b)
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    out = alpha * (opa @ opb)
    if beta != 0:
        out = out + beta * _f64(c)
    return out


def gemm(a, b, c, alpha, beta, trans_a, trans_b):
    """c (M, N) = alpha * op(a) @ op(b) + beta * c; op(a) is a.T if trans_a."""
    c[...] = gemm_ref(a, b, c, alpha, beta, trans_a, trans_b)


# --------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------


def conv2d_output_hw(in_hw, kernel_hw, stride=(1, 1), pad_top_left=(0, 0), dilation=(1, 1)):
    """Output (P, Q) for symmetric padding: (H + 2*ph - dh*(R-1) - 1) // sh + 1."""
    (h, w), (r, s) = in_hw, kernel_hw
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(pad_top_left), _pair(dilation)
    return ((h + 2 * ph - dh * (r - 1) - 1) // sh + 1,
            (w + 2 * pw - dw * (s - 1) - 1) // sw + 1)


def _padded(x, out_hw, kernel_hw, stride, pad, dilation):
    """Zero-padded copy of x big enough for every tap of every output, and its offset."""
    n, c, h, w = x.shape
    (p, q), (r, s) = out_hw, kernel_hw
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    hp = max(ph + h, (p - 1) * sh + (r - 1) * dh + 1)
    wp = max(pw + w, (q - 1) * sw + (s - 1) * dw + 1)
    xp = np.zeros((n, c, hp, wp))
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def _tap(xp, i, j, out_hw, stride, dilation):
    """The (N, C, P, Q) slice of the padded input that kernel tap (i, j) multiplies."""
    (p, q), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return xp[:, :, i * dh:i * dh + (p - 1) * sh + 1:sh, j * dw:j * dw + (q - 1) * sw + 1:sw]


def conv2d_forward_ref(x, w, b=None, stride=(1, 1), pad_top_left=(0, 0), out_hw=None,
                       dilation=(1, 1)):
    """y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] x[n,c,p*sh-ph+r*dh,q*sw-pw+s*dw] (float64)."""
    x, w = _f64(x), _f64(w)
    stride, pad, dilation = _pair(stride), _pair(pad_top_left), _pair(dilation)
    k, _, r, s = w.shape
    if out_hw is None:
        out_hw = conv2d_output_hw(x.shape[2:], (r, s), stride, pad, dilation)
    xp = _padded(x, out_hw, (r, s), stride, pad, dilation)
    y = np.zeros((x.shape[0], k) + tuple(out_hw))
    for i in range(r):
        for j in range(s):
            y += np.einsum("ncpq,kc->nkpq", _tap(xp, i, j, out_hw, stride, dilation),
                           w[:, :, i, j])
    if b is not None:
        y += _f64(b)[None, :, None, None]
    return y


def conv2d_backward_data_ref(dy, w, x_hw, stride=(1, 1), pad_top_left=(0, 0), dilation=(1, 1)):
    """dx = d sum(dy * y) / dx: every tap scatters w^T dy back to where it read x."""
    dy, w = _f64(dy), _f64(w)
    stride, pad, dilation = _pair(stride), _pair(pad_top_left), _pair(dilation)
    n, k, p, q = dy.shape
    _, c, r, s = w.shape
    h, wd = x_hw
    (ph, pw) = pad
    dxp = _padded(np.zeros((n, c, h, wd)), (p, q), (r, s), stride, pad, dilation)
    for i in range(r):
        for j in range(s):
            _tap(dxp, i, j, (p, q), stride, dilation)[...] += np.einsum(
                "nkpq,kc->ncpq", dy, w[:, :, i, j])
    # Gradient that lands in the padding belongs to no input element.
    return dxp[:, :, ph:ph + h, pw:pw + wd].copy()


def conv2d_backward_weight_ref(dy, x, kernel_hw, stride=(1, 1), pad_top_left=(0, 0),
                               dilation=(1, 1)):
    """dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] x[n,c,p*sh-ph+r*dh,q*sw-pw+s*dw]."""
    dy, x = _f64(dy), _f64(x)
    stride, pad, dilation = _pair(stride), _pair(pad_top_left), _pair(dilation)
    r, s = kernel_hw
    out_hw = dy.shape[2:]
    xp = _padded(x, out_hw, (r, s), stride, pad, dilation)
    dw = np.zeros((dy.shape[1], x.shape[1], r, s))
    for i in range(r):
        for j in range(s):
            dw[:, :, i, j] = np.einsum("nkpq,ncpq->kc", dy,
                                       _tap(xp, i, j, out_hw, stride, dilation))
    return dw


def conv2d_backward_bias_ref(dy):
    """db[k] = sum_{n,p,q} dy[n,k,p,q]."""
    return _f64(dy).sum(axis=(0, 2, 3))


def conv2d_forward(x, w, b, y, sh, sw, ph, pw, dh, dw):
    """x (N,C,H,W), w (K,C,R,S), b (K,) or None -> y (N,K,P,Q); P, Q from y."""
    y[...] = conv2d_forward_ref(x, w, b, (sh, sw), (ph, pw), y.shape[2:], (dh, dw))


def conv2d_backward_data(dy, w, dx, sh, sw, ph, pw, dh, dw):
    """dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)."""
    dx[...] = conv2d_backward_data_ref(dy, w, dx.shape[2:], (sh, sw), (ph, pw), (dh, dw))


def conv2d_backward_weight(dy, x, dw_out, sh, sw, ph, pw, dh, dw):
    """dy (N,K,P,Q), x (N,C,H,W) -> dw_out (K,C,R,S), summed over the batch."""
    dw_out[...] = conv2d_backward_weight_ref(dy, x, dw_out.shape[2:], (sh, sw), (ph, pw),
                                             (dh, dw))


def conv2d_backward_bias(dy, db):
    """dy (N,K,P,Q) -> db (K,)."""
    db[...] = conv2d_backward_bias_ref(dy)


# --------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------


def _pool_output_hw(in_hw, kernel, stride, pad):
    (h, w), (kh, kw), (sh, sw), (ph, pw) = in_hw, kernel, stride, pad
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _tap_rows(out_len, stride, pad, offset, in_len):
    """Input index of window tap `offset` for every output index, and whether it is real."""
    idx = np.arange(out_len) * stride - pad + offset
    return np.clip(idx, 0, in_len - 1), (idx >= 0) & (idx < in_len)


def max_pool2d_forward_ref(x, kernel, stride, pad_top_left=(0, 0), out_hw=None):
    """Window max and flat argmax h*W + w (PyTorch rule: '>' or NaN takes it, -inf padding)."""
    x = _f64(x)
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad_top_left)
    n, c, h, w = x.shape
    if out_hw is None:
        out_hw = _pool_output_hw((h, w), kernel, stride, pad)
    p, q = out_hw
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    # Start from the first real element of each window with value -inf, as PyTorch does.
    h0 = np.maximum(np.arange(p) * sh - ph, 0)
    w0 = np.maximum(np.arange(q) * sw - pw, 0)
    best = np.full((n, c, p, q), -np.inf)
    index = np.broadcast_to((h0[:, None] * w + w0[None, :]), (n, c, p, q)).astype(np.int64)
    # Visit taps in row-major window order so the first maximum wins ties.
    for i in range(kh):
        hh, hok = _tap_rows(p, sh, ph, i, h)
        for j in range(kw):
            ww, wok = _tap_rows(q, sw, pw, j, w)
            v = x[:, :, hh[:, None], ww[None, :]]
            real = hok[:, None] & wok[None, :]
            take = real & ((v > best) | np.isnan(v))
            best = np.where(take, v, best)
            index = np.where(take, hh[:, None] * w + ww[None, :], index)
    return best, index


def max_pool2d_backward_ref(dy, indices, x_hw):
    """dx plane[indices] += dy (accumulating where windows share their argmax)."""
    dy = _f64(dy)
    n, c = dy.shape[:2]
    h, w = x_hw
    dx = np.zeros((n * c, h * w))
    planes = np.repeat(np.arange(n * c), dy.shape[2] * dy.shape[3])
    np.add.at(dx, (planes, np.asarray(indices).reshape(-1)), dy.reshape(-1))
    return dx.reshape(n, c, h, w)


def _avg_window(p, q, in_hw, kernel, stride, pad, count_include_pad):
    """PyTorch's avg-pool window for output (p, q): clipped bounds and divisor."""
    (h, w), (kh, kw), (sh, sw), (ph, pw) = in_hw, kernel, stride, pad
    hs, ws = p * sh - ph, q * sw - pw
    he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
    pool_size = (he - hs) * (we - ws)
    hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
    divisor = pool_size if count_include_pad else (he - hs) * (we - ws)
    return hs, he, ws, we, divisor


def avg_pool2d_forward_ref(x, kernel, stride, pad_top_left=(0, 0), count_include_pad=True,
                           out_hw=None):
    """y[n,c,p,q] = sum of the real elements of window (p, q) / divisor."""
    x = _f64(x)
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad_top_left)
    n, c, h, w = x.shape
    if out_hw is None:
        out_hw = _pool_output_hw((h, w), kernel, stride, pad)
    y = np.zeros((n, c) + tuple(out_hw))
    for p in range(out_hw[0]):
        for q in range(out_hw[1]):
            hs, he, ws, we, div = _avg_window(p, q, (h, w), kernel, stride, pad,
                                              count_include_pad)
            if he > hs and we > ws:
                y[:, :, p, q] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / div
    return y


def avg_pool2d_backward_ref(dy, x_hw, kernel, stride, pad_top_left=(0, 0),
                            count_include_pad=True):
    """Each window's real elements receive dy / divisor."""
    dy = _f64(dy)
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad_top_left)
    n, c, p_out, q_out = dy.shape
    dx = np.zeros((n, c) + tuple(x_hw))
    for p in range(p_out):
        for q in range(q_out):
            hs, he, ws, we, div = _avg_window(p, q, x_hw, kernel, stride, pad,
                                              count_include_pad)
            if he > hs and we > ws:
                dx[:, :, hs:he, ws:we] += (dy[:, :, p, q] / div)[:, :, None, None]
    return dx


def max_pool2d_forward(x, y, indices, kh, kw, sh, sw, ph, pw):
    """x (N,C,H,W) -> y (N,C,P,Q), indices int64 (N,C,P,Q) flat h*W + w."""
    yr, ir = max_pool2d_forward_ref(x, (kh, kw), (sh, sw), (ph, pw), y.shape[2:])
    y[...] = yr
    indices[...] = ir


def max_pool2d_backward(dy, indices, dx):
    """dy, indices (N,C,P,Q) -> dx (N,C,H,W)."""
    dx[...] = max_pool2d_backward_ref(dy, indices, dx.shape[2:])


def avg_pool2d_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad):
    """x (N,C,H,W) -> y (N,C,P,Q)."""
    y[...] = avg_pool2d_forward_ref(x, (kh, kw), (sh, sw), (ph, pw), count_include_pad,
                                    y.shape[2:])


def avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, count_include_pad):
    """dy (N,C,P,Q) -> dx (N,C,H,W)."""
    dx[...] = avg_pool2d_backward_ref(dy, dx.shape[2:], (kh, kw), (sh, sw), (ph, pw),
                                      count_include_pad)


# --------------------------------------------------------------------------------------
# batch norm
# --------------------------------------------------------------------------------------


def _channel_view(v, ndim):
    """(C,) -> shape (1, C, 1, ...) broadcasting against an ndim-d (N, C, *) array."""
    return _f64(v).reshape((1, -1) + (1,) * (ndim - 2))


def _reduce_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def batch_norm_forward_training_ref(x, weight, bias, eps=1e-5):
    """Batch statistics per channel: mean, biased var, invstd = 1/sqrt(var+eps); y."""
    x = _f64(x)
    axes = _reduce_axes(x)
    mean = x.mean(axis=axes)
    var = ((x - _channel_view(mean, x.ndim)) ** 2).mean(axis=axes)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - _channel_view(mean, x.ndim)) * _channel_view(invstd, x.ndim)
    y = xhat * _channel_view(weight, x.ndim) + _channel_view(bias, x.ndim)
    return y, mean, var, invstd


def batch_norm_forward_inference_ref(x, weight, bias, running_mean, running_var, eps=1e-5):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias."""
    x = _f64(x)
    nd = x.ndim
    return ((x - _channel_view(running_mean, nd))
            / np.sqrt(_channel_view(running_var, nd) + eps)
            * _channel_view(weight, nd) + _channel_view(bias, nd))


def batch_norm_backward_ref(dy, x, weight, mean, invstd):
    """Training-mode gradients: dbias = sum dy, dweight = sum dy*xhat,
    dx = weight*invstd/M * (M*dy - dbias - xhat*dweight)."""
    dy, x = _f64(dy), _f64(x)
    nd = x.ndim
    axes = _reduce_axes(x)
    m = x.size // x.shape[1]
    xhat = (x - _channel_view(mean, nd)) * _channel_view(invstd, nd)
    dbias = dy.sum(axis=axes)
    dweight = (dy * xhat).sum(axis=axes)
    dx = (_channel_view(weight, nd) * _channel_view(invstd, nd) / m
          * (m * dy - _channel_view(dbias, nd) - xhat * _channel_view(dweight, nd)))
    return dx, dweight, dbias


def batch_norm_forward_training(x, weight, bias, y, mean, var, invstd, eps):
    """x (N,C,L), weight, bias (C,) -> y (N,C,L), mean, var (biased), invstd (C,)."""
    y[...], mean[...], var[...], invstd[...] = batch_norm_forward_training_ref(
        x, weight, bias, eps)


def batch_norm_forward_inference(x, weight, bias, running_mean, running_var, y, eps):
    """x (N,C,L), weight, bias, running_mean, running_var (C,) -> y (N,C,L)."""
    y[...] = batch_norm_forward_inference_ref(x, weight, bias, running_mean, running_var, eps)


def batch_norm_backward(dy, x, weight, mean, invstd, dx, dweight, dbias):
    """dy, x (N,C,L), weight, mean, invstd (C,) -> dx (N,C,L), dweight, dbias (C,)."""
    dx[...], dweight[...], dbias[...] = batch_norm_backward_ref(dy, x, weight, mean, invstd)


# ---------------------------------------------------------------------- activations


def tanh_forward(x, y):
    y[...] = np.tanh(_f64(x))


def tanh_backward(dy, y, dx):
    y64 = _f64(y)
    dx[...] = _f64(dy) * (1 - y64 * y64)


def sigmoid_forward(x, y):
    y[...] = 1 / (1 + np.exp(-_f64(x)))


def sigmoid_backward(dy, y, dx):
    y64 = _f64(y)
    dx[...] = _f64(dy) * y64 * (1 - y64)


def leaky_relu_forward(x, y, slope):
    x64 = _f64(x)
    neg = np.zeros_like(x64) if slope == 0 else slope * x64  # relu(-inf) = 0
    y[...] = np.where((x64 > 0) | np.isnan(x64), x64, neg)


def leaky_relu_backward(dy, x, dx, slope):
    dx[...] = np.where(_f64(x) > 0, _f64(dy), slope * _f64(dy))


def elu_forward(x, y, alpha, scale):
    x64 = _f64(x)
    y[...] = scale * np.where(x64 > 0, x64, alpha * np.expm1(np.minimum(x64, 0)))


def elu_backward(dy, x, dx, alpha, scale):
    x64 = _f64(x)
    dx[...] = _f64(dy) * scale * np.where(x64 <= 0, alpha * np.exp(np.minimum(x64, 0)), 1.0)


def _erf(v):
    return np.vectorize(math.erf, otypes=[np.float64])(v)


def gelu_forward(x, y, approximate):
    """x * Phi(x), or PyTorch's tanh approximation."""
    x64 = _f64(x)
    if approximate:
        y[...] = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    else:
        y[...] = 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))


def gelu_backward(dy, x, dx, approximate):
    x64 = _f64(x)
    if approximate:
        k = math.sqrt(2 / math.pi)
        t = np.tanh(k * (x64 + 0.044715 * x64**3))
        d = 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) * k * (1 + 3 * 0.044715 * x64**2)
    else:
        d = 0.5 * (1 + _erf(x64 / math.sqrt(2))) + x64 * np.exp(-0.5 * x64**2) / math.sqrt(
            2 * math.pi)
    dx[...] = _f64(dy) * d


# ---------------------------------------------------------------------- recurrent cells
# Gate order as PyTorch's: LSTM i, f, g, o; GRU r, z, n with n = tanh(x_n + r * (W_hn h +
# b_hn)). The *_ref helpers allocate and return float64 results; the backend-level
# functions below them write into preallocated outputs.


def _sigmoid64(x):
    return 1 / (1 + np.exp(-x))


def lstm_cell_forward_ref(gates, c_prev, bias=None):
    """gates (B, 4H) pre-activations (less ``bias`` (4H), if given), c_prev (B, H) ->
    (h, c, act (B, 4H) activated)."""
    gates, c_prev = _f64(gates), _f64(c_prev)
    if bias is not None:
        gates = gates + _f64(bias)
    i, f, g, o = np.split(gates, 4, axis=1)
    i, f, g, o = _sigmoid64(i), _sigmoid64(f), np.tanh(g), _sigmoid64(o)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c, np.concatenate([i, f, g, o], axis=1)


def lstm_cell_backward_ref(act, c_prev, c, dh, dc):
    """-> (dgates (B, 4H) w.r.t. the pre-activations, dc_prev (B, H), db (4H,))."""
    act, c_prev, c, dh, dc = map(_f64, (act, c_prev, c, dh, dc))
    i, f, g, o = np.split(act, 4, axis=1)
    tc = np.tanh(c)
    dct = dc + dh * o * (1 - tc**2)
    dgates = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f),
                             dct * i * (1 - g**2), dh * tc * o * (1 - o)], axis=1)
    return dgates, dct * f, dgates.sum(axis=0)


def gru_cell_forward_ref(gx, gh, b_ih, b_hh, h_prev):
    """gx = x W_ih^T, gh = h_prev W_hh^T (B, 3H), b_ih, b_hh (3H,) -> (h, act (B, 4H) =
    r, z, n, hn = W_hn h + b_hn)."""
    gx, gh, b_ih, b_hh, h_prev = map(_f64, (gx, gh, b_ih, b_hh, h_prev))
    gx = gx + b_ih
    xr, xz, xn = np.split(gx, 3, axis=1)
    hr, hz, hn = np.split(gh + b_hh, 3, axis=1)
    r, z = _sigmoid64(xr + hr), _sigmoid64(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1 - z) * n + z * h_prev
    return h, np.concatenate([r, z, n, hn], axis=1)


def gru_cell_backward_ref(act, h_prev, dh):
    """-> (dgx, dgh (B, 3H), dh_prev (B, H) the direct path dh * z, dbx, dbh (3H,))."""
    act, h_prev, dh = map(_f64, (act, h_prev, dh))
    r, z, n, hn = np.split(act, 4, axis=1)
    dn = dh * (1 - z) * (1 - n**2)
    dz = dh * (h_prev - n) * z * (1 - z)
    dr = dn * hn * r * (1 - r)
    dgx = np.concatenate([dr, dz, dn], axis=1)
    dgh = np.concatenate([dr, dz, dn * r], axis=1)
    return dgx, dgh, dh * z, dgx.sum(axis=0), dgh.sum(axis=0)


def rnn_cell_forward_ref(pre, relu=False, bias=None):
    pre = _f64(pre) + (0.0 if bias is None else _f64(bias))
    return np.maximum(pre, 0) if relu else np.tanh(pre)


def rnn_cell_backward_ref(h, dh, relu=False):
    """h the cell's output -> (dpre, db)."""
    h, dh = _f64(h), _f64(dh)
    d = np.where(h > 0, dh, 0.0) if relu else dh * (1 - h**2)
    return d, d.sum(axis=0)


def lstm_cell_forward(gates, bias, c_prev, h, c, act):
    h[...], c[...], act[...] = lstm_cell_forward_ref(gates, c_prev, bias)


def lstm_cell_backward(act, c_prev, c, dh, dc, dgates, dc_prev, db, accumulate):
    g, dcp, s = lstm_cell_backward_ref(act, c_prev, c, dh, dc)
    dgates[...], dc_prev[...] = g, dcp
    db[...] = db + s if accumulate else s


def gru_cell_forward(gx, gh, b_ih, b_hh, h_prev, h, act):
    h[...], act[...] = gru_cell_forward_ref(gx, gh, b_ih, b_hh, h_prev)


def gru_cell_backward(act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh, accumulate):
    gx, gh, direct, sx, sh = gru_cell_backward_ref(act, h_prev, dh)
    dgx[...], dgh[...] = gx, gh
    if accumulate:
        dh_prev[...], dbx[...], dbh[...] = dh_prev + direct, dbx + sx, dbh + sh
    else:
        dh_prev[...], dbx[...], dbh[...] = direct, sx, sh


def rnn_cell_forward(pre, bias, h, relu):
    h[...] = rnn_cell_forward_ref(pre, relu, bias)


def rnn_cell_backward(h, dh, dpre, db, relu, accumulate):
    d, s = rnn_cell_backward_ref(h, dh, relu)
    dpre[...] = d
    db[...] = db + s if accumulate else s


def rnn_recurrence_forward(mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act, reverse):
    """xproj (T, B, G*H) = x W_ih^T consumed, w_hh (G*H, H), b_ih, b_hh (G*H), hbuf
    (T+1, B, H) with the initial state in place -> the states; cbuf (T+1, B, H) LSTM; act
    (T, B, 4H) GRU."""
    import sys

    recurrence_forward_loop(sys.modules[__name__], mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf,
                            act, reverse)


def rnn_recurrence_backward(mode, w_hh, hbuf, cbuf, act, dH, dc, dgx, dgh, dbx, dbh, reverse):
    """dH (T+1, B, H), dc (B, H) in/out -> dgx, dgh (T, B, G*H), dbx, dbh (G*H)."""
    import sys

    recurrence_backward_loop(sys.modules[__name__], mode, w_hh, hbuf, cbuf, act, dH, dc, dgx,
                             dgh, dbx, dbh, reverse)

# --------------------------------------------------------------------------------------
# upsampling: y = A_h x A_w^T per plane, with A the (out, in) interpolation matrix of an axis
# (backend-level: upsample_nearest2d_forward(x, y, scale_h, scale_w),
# upsample_nearest2d_backward(dy, dx, scale_h, scale_w),
# upsample_bilinear2d_forward(x, y, align_corners, scale_h, scale_w),
# upsample_bilinear2d_backward(dy, dx, align_corners, scale_h, scale_w); scale <= 0 means
# "the output size was given", the step is then in/out)
# --------------------------------------------------------------------------------------


def nearest_matrix(n_in, n_out, scale=0.0):
    """A[d, src] = 1 with PyTorch's nearest rule: src = min(floor(d * step), in - 1), the
    step 1/scale or in/out computed in float32 (as PyTorch does for every dtype)."""
    a = np.zeros((n_out, n_in))
    step = np.float32(1.0 / scale) if scale > 0 else np.float32(n_in) / np.float32(n_out)
    for d in range(n_out):
        if n_out == n_in:
            src = d
        elif n_out == 2 * n_in:
            src = d // 2
        else:
            src = min(int(np.floor(np.float32(d) * step)), n_in - 1)
        a[d, src] = 1.0
    return a


def bilinear_matrix(n_in, n_out, align_corners=False, scale=0.0):
    """A[d, i0] = 1 - t, A[d, i1] = t for the source coordinate src = i0 + t (float64):
    align_corners maps the corner pixels' centres onto each other, src = d (in-1)/(out-1);
    otherwise pixel areas are aligned, src = (d + 0.5) step - 0.5, clamped at 0."""
    a = np.zeros((n_out, n_in))
    for d in range(n_out):
        if n_out == n_in:
            a[d, d] = 1.0
            continue
        if align_corners:
            src = d * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            step = 1.0 / scale if scale > 0 else n_in / n_out
            src = max((d + 0.5) * step - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        t = min(max(src - i0, 0.0), 1.0)
        a[d, i0] += 1.0 - t
        a[d, min(i0 + 1, n_in - 1)] += t
    return a


def upsample_ref(x, out_hw, mode="nearest", align_corners=False, scales=(0.0, 0.0)):
    """x (N, C, H, W) -> y (N, C, P, Q) in float64."""
    x = _f64(x)
    (p, q), (h, w) = out_hw, x.shape[2:]
    if mode == "nearest":
        ah, aw = nearest_matrix(h, p, scales[0]), nearest_matrix(w, q, scales[1])
    else:
        ah = bilinear_matrix(h, p, align_corners, scales[0])
        aw = bilinear_matrix(w, q, align_corners, scales[1])
    return np.einsum("ph,nchw,qw->ncpq", ah, x, aw)


def upsample_backward_ref(dy, in_hw, mode="nearest", align_corners=False, scales=(0.0, 0.0)):
    """dy (N, C, P, Q) -> dx (N, C, H, W) = A_h^T dy A_w in float64."""
    dy = _f64(dy)
    (h, w), (p, q) = in_hw, dy.shape[2:]
    if mode == "nearest":
        ah, aw = nearest_matrix(h, p, scales[0]), nearest_matrix(w, q, scales[1])
    else:
        ah = bilinear_matrix(h, p, align_corners, scales[0])
        aw = bilinear_matrix(w, q, align_corners, scales[1])
    return np.einsum("ph,ncpq,qw->nchw", ah, dy, aw)


def upsample_nearest2d_forward(x, y, scale_h, scale_w):
    y[...] = upsample_ref(x, y.shape[2:], "nearest", False, (scale_h, scale_w))


def upsample_nearest2d_backward(dy, dx, scale_h, scale_w):
    dx[...] = upsample_backward_ref(dy, dx.shape[2:], "nearest", False, (scale_h, scale_w))


def upsample_bilinear2d_forward(x, y, align_corners, scale_h, scale_w):
    y[...] = upsample_ref(x, y.shape[2:], "bilinear", align_corners, (scale_h, scale_w))


def upsample_bilinear2d_backward(dy, dx, align_corners, scale_h, scale_w):
    dx[...] = upsample_backward_ref(dy, dx.shape[2:], "bilinear", align_corners,
                                    (scale_h, scale_w))


def _epilogue_ref(pre, act, p1, p2):
    """act(pre) in float64, with the activation kernels of this module."""
    from ._epilogue import activation_call

    call = activation_call(act, p1, p2)
    if call is None:
        return pre
    out = np.empty_like(pre)
    globals()[call[0]](pre, out, *call[1])
    return out


def conv2d_forward_act(x, w, b, y, sh, sw, ph, pw, dh, dw, act, p1, p2):
    """y = act(conv(x, w) + b), all in float64."""
    pre = conv2d_forward_ref(x, w, b, (sh, sw), (ph, pw), y.shape[2:], (dh, dw))
    y[...] = _epilogue_ref(pre, act, p1, p2)


def linear_forward_act(x, w, b, y, act, p1, p2):
    """y = act(x w^T + b), all in float64."""
    pre = _f64(x) @ _f64(w).T
    if b is not None:
        pre = pre + _f64(b)
    y[...] = _epilogue_ref(pre, act, p1, p2)
