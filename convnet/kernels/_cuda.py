"""The ``cuda`` backend: the kernels of ``convnet._cuda`` on CuPy arrays.

Same backend-level functions and argument conventions as ``convnet._C`` (preallocated
outputs, written in place; see ``convnet.kernels._numba``). Each function checks its
arrays (CuPy, dtype, C-contiguous, shape, on the current device) before anything is
queued, then passes device pointers, shapes, CuPy's current stream and device to the
extension. Scratch memory (the convolutions' index tables, batch norm's partial sums)
comes from CuPy's memory pool. CuPy is imported lazily, so this module (and its argument
checks) loads on machines without it.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import _cuda as _ext  # ImportError when the extension was not built

FLOAT_DTYPES = ("float32", "float64")

# Indices for max_pool2d_backward are checked on the device (one reduction and a sync):
# an index outside its plane would otherwise be skipped without a word.
CHECK_POOL_INDICES = True


def _cupy():
    import cupy

    return cupy


def _is_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


def _array(name, a, dtype=None, shape=None, ndim=None):
    """Refuse what the kernels cannot take; returns the array's dtype name."""
    if not _is_cupy(a):
        raise TypeError(f"{name}: the cuda backend needs a CuPy array, got "
                        f"{type(a).__module__}.{type(a).__name__}")
    dt = str(a.dtype)
    if dtype is None and dt not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got dtype {dt}")
    if dtype is not None and dt != dtype:
        raise TypeError(f"{name}: dtype {dt} differs from the other inputs' {dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {tuple(a.shape)}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(a.shape)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array")
    return dt


def _launch_args(**arrays):
    """(stream pointer, device id) after checking every array lives on the current device."""
    cupy = _cupy()
    dev = cupy.cuda.Device().id
    for name, a in arrays.items():
        if a is not None and a.device.id != dev:
            raise ValueError(f"{name}: on cuda:{a.device.id}, but the current device is "
                             f"cuda:{dev} (use `with cupy.cuda.Device({a.device.id}):`)")
    return cupy.cuda.get_current_stream().ptr, dev


def _ptr(a) -> int:
    return 0 if a is None else int(a.data.ptr)


# --------------------------------------------------------------------------- index tables

_TABLES: OrderedDict = OrderedDict()
_TABLES_MAX = 64


def conv_table(C, H, W, R, S, dh, dw):
    """Rows crs = (c*R + r)*S + s: {c*H*W + r*dh*W + s*dw, r*dh, s*dw, 0} (NumPy int32)."""
    c, r, s = np.meshgrid(np.arange(C), np.arange(R), np.arange(S), indexing="ij")
    t = np.zeros((C * R * S, 4), dtype=np.int64)
    t[:, 0] = (c * H * W + r * dh * W + s * dw).ravel()
    t[:, 1] = (r * dh).ravel()
    t[:, 2] = (s * dw).ravel()
    return t.astype(np.int32)


def dgrad_table(K, C, P, Q, R, S, dh, dw):
    """Rows krs = (k*R + r)*S + s: {k*P*Q, r*dh, s*dw, k*C*R*S + r*S + s} (NumPy int32)."""
    k, r, s = np.meshgrid(np.arange(K), np.arange(R), np.arange(S), indexing="ij")
    t = np.zeros((K * R * S, 4), dtype=np.int64)
    t[:, 0] = (k * P * Q).ravel()
    t[:, 1] = (r * dh).ravel()
    t[:, 2] = (s * dw).ravel()
    t[:, 3] = (k * C * R * S + r * S + s).ravel()
    return t.astype(np.int32)


def _device_table(kind, dev, *args):
    key = (kind, dev, *args)
    table = _TABLES.get(key)
    if table is None:
        host = conv_table(*args) if kind == "conv" else dgrad_table(*args)
        table = _cupy().asarray(host)
        _TABLES[key] = table
        if len(_TABLES) > _TABLES_MAX:
            _TABLES.popitem(last=False)
    else:
        _TABLES.move_to_end(key)
    return table


# --------------------------------------------------------------------------- GEMM


def gemm(a, b, c, alpha, beta, trans_a, trans_b):
    dt = _array("a", a, ndim=2)
    _array("b", b, dt, ndim=2)
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != kb:
        raise ValueError("gemm: inner dimensions differ")
    _array("c", c, dt, shape=(m, n))
    stream, dev = _launch_args(a=a, b=b, c=c)
    _ext.gemm(dt, _ptr(a), _ptr(b), _ptr(c), m, n, k, a.shape[1], b.shape[1], n, float(alpha),
              float(beta), bool(trans_a), bool(trans_b), stream, dev)


# --------------------------------------------------------------------------- convolution


def _conv_geom(x_shape, w_shape, y_shape, sh, sw, ph, pw, dh, dw):
    n, c, h, w = x_shape
    k, cw, r, s = w_shape
    if cw != c:
        raise ValueError("w: input channels differ from x's")
    if y_shape[0] != n or y_shape[1] != k:
        raise ValueError("y: wrong batch/channels")
    return (n, c, h, w, k, r, s, y_shape[2], y_shape[3], sh, sw, ph, pw, dh, dw)


def conv2d_forward(x, w, b, y, sh, sw, ph, pw, dh, dw):
    dt = _array("x", x, ndim=4)
    _array("w", w, dt, ndim=4)
    _array("y", y, dt, ndim=4)
    if b is not None:
        _array("b", b, dt, shape=(w.shape[0],))
    g = _conv_geom(x.shape, w.shape, y.shape, sh, sw, ph, pw, dh, dw)
    stream, dev = _launch_args(x=x, w=w, b=b, y=y)
    n, c, h, wd, k, r, s = g[:7]
    table = _device_table("conv", dev, c, h, wd, r, s, dh, dw)
    _ext.conv2d_forward(dt, _ptr(x), _ptr(w), _ptr(b), _ptr(y), g, _ptr(table), stream, dev)


def conv2d_backward_data(dy, w, dx, sh, sw, ph, pw, dh, dw):
    dt = _array("dy", dy, ndim=4)
    _array("w", w, dt, ndim=4)
    _array("dx", dx, dt, ndim=4)
    g = _conv_geom(dx.shape, w.shape, dy.shape, sh, sw, ph, pw, dh, dw)
    stream, dev = _launch_args(dy=dy, w=w, dx=dx)
    n, c, h, wd, k, r, s, p, q = g[:9]
    table = _device_table("dgrad", dev, k, c, p, q, r, s, dh, dw)
    _ext.conv2d_backward_data(dt, _ptr(dy), _ptr(w), _ptr(dx), g, _ptr(table), stream, dev)


def conv2d_backward_weight(dy, x, dw_out, sh, sw, ph, pw, dh, dw):
    dt = _array("dy", dy, ndim=4)
    _array("x", x, dt, ndim=4)
    _array("dw_out", dw_out, dt, ndim=4)
    g = _conv_geom(x.shape, dw_out.shape, dy.shape, sh, sw, ph, pw, dh, dw)
    stream, dev = _launch_args(dy=dy, x=x, dw_out=dw_out)
    n, c, h, wd, k, r, s = g[:7]
    table = _device_table("conv", dev, c, h, wd, r, s, dh, dw)
    _ext.conv2d_backward_weight(dt, _ptr(dy), _ptr(x), _ptr(dw_out), g, _ptr(table), stream,
                                dev)


def conv2d_backward_bias(dy, db):
    dt = _array("dy", dy, ndim=4)
    _array("db", db, dt, shape=(dy.shape[1],))
    stream, dev = _launch_args(dy=dy, db=db)
    n, k, p, q = dy.shape
    _ext.conv2d_backward_bias(dt, _ptr(dy), _ptr(db), n, k, p, q, stream, dev)


# --------------------------------------------------------------------------- pooling


def _pool_geom(x, y, kh, kw, sh, sw, ph, pw):
    n, c, h, w = x.shape
    if tuple(y.shape[:2]) != (n, c):
        raise ValueError(f"y: batch/channels {tuple(y.shape[:2])} differ from x's {(n, c)}")
    return (n, c, h, w, y.shape[2], y.shape[3], kh, kw, sh, sw, ph, pw)


def max_pool2d_forward(x, y, indices, kh, kw, sh, sw, ph, pw):
    dt = _array("x", x, ndim=4)
    _array("y", y, dt, ndim=4)
    _array("indices", indices, "int64", shape=y.shape)
    g = _pool_geom(x, y, kh, kw, sh, sw, ph, pw)
    stream, dev = _launch_args(x=x, y=y, indices=indices)
    _ext.max_pool2d_forward(dt, _ptr(x), _ptr(y), _ptr(indices), g, stream, dev)


def max_pool2d_backward(dy, indices, dx):
    dt = _array("dy", dy, ndim=4)
    _array("dx", dx, dt, ndim=4)
    _array("indices", indices, "int64", shape=dy.shape)
    if tuple(dy.shape[:2]) != tuple(dx.shape[:2]):
        raise ValueError("dy: batch/channels differ from dx's")
    n, c, h, w = dx.shape
    stream, dev = _launch_args(dy=dy, indices=indices, dx=dx)
    if CHECK_POOL_INDICES and indices.size:
        bad = int(((indices < 0) | (indices >= h * w)).sum())
        if bad:
            raise ValueError(f"indices: {bad} values outside the plane [0, {h * w})")
    # The window is in the indices: only (N,C,H,W,P,Q) matter.
    g = (n, c, h, w, dy.shape[2], dy.shape[3], 1, 1, 1, 1, 0, 0)
    _ext.max_pool2d_backward(dt, _ptr(dy), _ptr(indices), _ptr(dx), g, stream, dev)


def avg_pool2d_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad):
    dt = _array("x", x, ndim=4)
    _array("y", y, dt, ndim=4)
    g = _pool_geom(x, y, kh, kw, sh, sw, ph, pw)
    stream, dev = _launch_args(x=x, y=y)
    _ext.avg_pool2d_forward(dt, _ptr(x), _ptr(y), g, bool(count_include_pad), stream, dev)


def avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, count_include_pad):
    dt = _array("dy", dy, ndim=4)
    _array("dx", dx, dt, ndim=4)
    g = _pool_geom(dx, dy, kh, kw, sh, sw, ph, pw)
    stream, dev = _launch_args(dy=dy, dx=dx)
    _ext.avg_pool2d_backward(dt, _ptr(dy), _ptr(dx), g, bool(count_include_pad), stream, dev)


# --------------------------------------------------------------------------- batch norm


def _bn_shape(x):
    if x.ndim != 3:
        raise ValueError(f"x: expected a 3-D array (N, C, L), got shape {tuple(x.shape)}")
    return x.shape


def _workspace(n, c, l_, dev):
    return _cupy().empty((_ext.batch_norm_workspace(n, c, l_, dev),), dtype=np.float64)


def batch_norm_forward_training(x, weight, bias, y, mean, var, invstd, eps):
    dt = _array("x", x)
    n, c, l_ = _bn_shape(x)
    _array("y", y, dt, shape=(n, c, l_))
    for name, a in (("weight", weight), ("bias", bias), ("mean", mean), ("var", var),
                    ("invstd", invstd)):
        _array(name, a, dt, shape=(c,))
    if n * l_ < 1:
        raise ValueError("x: no values per channel")
    stream, dev = _launch_args(x=x, weight=weight, bias=bias, y=y, mean=mean, var=var,
                               invstd=invstd)
    work = _workspace(n, c, l_, dev)
    _ext.batch_norm_forward_training(dt, _ptr(x), _ptr(weight), _ptr(bias), _ptr(y), _ptr(mean),
                                     _ptr(var), _ptr(invstd), n, c, l_, float(eps), _ptr(work),
                                     stream, dev)


def batch_norm_forward_inference(x, weight, bias, running_mean, running_var, y, eps):
    dt = _array("x", x)
    n, c, l_ = _bn_shape(x)
    _array("y", y, dt, shape=(n, c, l_))
    for name, a in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        _array(name, a, dt, shape=(c,))
    stream, dev = _launch_args(x=x, weight=weight, bias=bias, running_mean=running_mean,
                               running_var=running_var, y=y)
    work = _cupy().empty((2 * c,), dtype=np.float64)
    _ext.batch_norm_forward_inference(dt, _ptr(x), _ptr(weight), _ptr(bias), _ptr(running_mean),
                                      _ptr(running_var), _ptr(y), n, c, l_, float(eps),
                                      _ptr(work), stream, dev)


def batch_norm_backward(dy, x, weight, mean, invstd, dx, dweight, dbias):
    dt = _array("x", x)
    n, c, l_ = _bn_shape(x)
    _array("dy", dy, dt, shape=(n, c, l_))
    _array("dx", dx, dt, shape=(n, c, l_))
    for name, a in (("weight", weight), ("mean", mean), ("invstd", invstd),
                    ("dweight", dweight), ("dbias", dbias)):
        _array(name, a, dt, shape=(c,))
    stream, dev = _launch_args(dy=dy, x=x, weight=weight, mean=mean, invstd=invstd, dx=dx,
                               dweight=dweight, dbias=dbias)
    work = _workspace(n, c, l_, dev)
    _ext.batch_norm_backward(dt, _ptr(dy), _ptr(x), _ptr(weight), _ptr(mean), _ptr(invstd),
                             _ptr(dx), _ptr(dweight), _ptr(dbias), n, c, l_, _ptr(work), stream,
                             dev)


# --------------------------------------------------------------------------- activations


def _same_size(name, a, ref, dt):
    _array(name, a, dt)
    if a.size != ref.size:
        raise ValueError(f"{name}: expected C-contiguous arrays of one size, got {a.size} "
                         f"and {ref.size} elements")


def _unary(fn, x, y):
    dt = _array("x", x)
    _same_size("y", y, x, dt)
    stream, dev = _launch_args(x=x, y=y)
    fn(dt, _ptr(x), _ptr(y), x.size, stream, dev)


def _binary(fn, dy, saved, dx, *params):
    dt = _array("dy", dy)
    _same_size("saved", saved, dy, dt)
    _same_size("dx", dx, dy, dt)
    stream, dev = _launch_args(dy=dy, saved=saved, dx=dx)
    fn(dt, _ptr(dy), _ptr(saved), _ptr(dx), dy.size, *params, stream, dev)


def tanh_forward(x, y):
    _unary(_ext.tanh_forward, x, y)


def tanh_backward(dy, y, dx):
    _binary(_ext.tanh_backward, dy, y, dx)


def sigmoid_forward(x, y):
    _unary(_ext.sigmoid_forward, x, y)


def sigmoid_backward(dy, y, dx):
    _binary(_ext.sigmoid_backward, dy, y, dx)


def leaky_relu_forward(x, y, slope):
    dt = _array("x", x)
    _same_size("y", y, x, dt)
    stream, dev = _launch_args(x=x, y=y)
    _ext.leaky_relu_forward(dt, _ptr(x), _ptr(y), x.size, float(slope), stream, dev)


def leaky_relu_backward(dy, x, dx, slope):
    _binary(_ext.leaky_relu_backward, dy, x, dx, float(slope))


def elu_forward(x, y, alpha, scale):
    dt = _array("x", x)
    _same_size("y", y, x, dt)
    stream, dev = _launch_args(x=x, y=y)
    _ext.elu_forward(dt, _ptr(x), _ptr(y), x.size, float(alpha), float(scale), stream, dev)


def elu_backward(dy, x, dx, alpha, scale):
    _binary(_ext.elu_backward, dy, x, dx, float(alpha), float(scale))


# --------------------------------------------------------------------------- recurrent cells
# Same layouts and aliasing as convnet._C's (csrc/cpu/rnn.cpp): act may be gates in the LSTM
# forward, dc_prev may be dc in its backward, h may be pre in the plain cell.


def lstm_cell_forward(gates, bias, c_prev, h, c, act):
    dt = _array("c_prev", c_prev, ndim=2)
    b, n = c_prev.shape
    _array("gates", gates, dt, shape=(b, 4 * n))
    _array("bias", bias, dt, shape=(4 * n,))
    _array("h", h, dt, shape=(b, n))
    _array("c", c, dt, shape=(b, n))
    _array("act", act, dt, shape=(b, 4 * n))
    stream, dev = _launch_args(gates=gates, bias=bias, c_prev=c_prev, h=h, c=c, act=act)
    _ext.lstm_cell_forward(dt, _ptr(gates), _ptr(bias), _ptr(c_prev), _ptr(h), _ptr(c),
                           _ptr(act), b, n, stream, dev)


def lstm_cell_backward(act, c_prev, c, dh, dc, dgates, dc_prev, db, accumulate):
    dt = _array("c_prev", c_prev, ndim=2)
    b, n = c_prev.shape
    _array("act", act, dt, shape=(b, 4 * n))
    for name, a in (("c", c), ("dh", dh), ("dc", dc), ("dc_prev", dc_prev)):
        _array(name, a, dt, shape=(b, n))
    _array("dgates", dgates, dt, shape=(b, 4 * n))
    _array("db", db, dt, shape=(4 * n,))
    stream, dev = _launch_args(act=act, c_prev=c_prev, c=c, dh=dh, dc=dc, dgates=dgates,
                               dc_prev=dc_prev, db=db)
    _ext.lstm_cell_backward(dt, _ptr(act), _ptr(c_prev), _ptr(c), _ptr(dh), _ptr(dc),
                            _ptr(dgates), _ptr(dc_prev), _ptr(db), b, n, bool(accumulate),
                            stream, dev)


def gru_cell_forward(gx, gh, b_ih, b_hh, h_prev, h, act):
    dt = _array("h_prev", h_prev, ndim=2)
    b, n = h_prev.shape
    _array("gx", gx, dt, shape=(b, 3 * n))
    _array("gh", gh, dt, shape=(b, 3 * n))
    _array("b_ih", b_ih, dt, shape=(3 * n,))
    _array("b_hh", b_hh, dt, shape=(3 * n,))
    _array("h", h, dt, shape=(b, n))
    _array("act", act, dt, shape=(b, 4 * n))
    stream, dev = _launch_args(gx=gx, gh=gh, b_ih=b_ih, b_hh=b_hh, h_prev=h_prev, h=h, act=act)
    _ext.gru_cell_forward(dt, _ptr(gx), _ptr(gh), _ptr(b_ih), _ptr(b_hh), _ptr(h_prev), _ptr(h),
                          _ptr(act), b, n, stream, dev)


def gru_cell_backward(act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh, accumulate):
    dt = _array("h_prev", h_prev, ndim=2)
    b, n = h_prev.shape
    _array("act", act, dt, shape=(b, 4 * n))
    _array("dh", dh, dt, shape=(b, n))
    _array("dgx", dgx, dt, shape=(b, 3 * n))
    _array("dgh", dgh, dt, shape=(b, 3 * n))
    _array("dh_prev", dh_prev, dt, shape=(b, n))
    _array("dbx", dbx, dt, shape=(3 * n,))
    _array("dbh", dbh, dt, shape=(3 * n,))
    stream, dev = _launch_args(act=act, h_prev=h_prev, dh=dh, dgx=dgx, dgh=dgh, dh_prev=dh_prev,
                               dbx=dbx, dbh=dbh)
    _ext.gru_cell_backward(dt, _ptr(act), _ptr(h_prev), _ptr(dh), _ptr(dgx), _ptr(dgh),
                           _ptr(dh_prev), _ptr(dbx), _ptr(dbh), b, n, bool(accumulate), stream,
                           dev)


def rnn_cell_forward(pre, bias, h, relu):
    dt = _array("pre", pre, ndim=2)
    b, n = pre.shape
    _array("bias", bias, dt, shape=(n,))
    _array("h", h, dt, shape=(b, n))
    stream, dev = _launch_args(pre=pre, bias=bias, h=h)
    _ext.rnn_cell_forward(dt, _ptr(pre), _ptr(bias), _ptr(h), b, n, bool(relu), stream, dev)


def rnn_cell_backward(h, dh, dpre, db, relu, accumulate):
    dt = _array("h", h, ndim=2)
    b, n = h.shape
    _array("dh", dh, dt, shape=(b, n))
    _array("dpre", dpre, dt, shape=(b, n))
    _array("db", db, dt, shape=(n,))
    stream, dev = _launch_args(h=h, dh=dh, dpre=dpre, db=db)
    _ext.rnn_cell_backward(dt, _ptr(h), _ptr(dh), _ptr(dpre), _ptr(db), b, n, bool(relu),
                           bool(accumulate), stream, dev)


_RNN_GATES = (4, 3, 1, 1)  # mode 0 lstm, 1 gru, 2 rnn_tanh, 3 rnn_relu


def _rnn_mode(mode):
    if mode not in (0, 1, 2, 3):
        raise ValueError(f"mode: expected 0 (lstm) .. 3 (rnn_relu), got {mode!r}")
    return _RNN_GATES[mode]


def _optional(name, a, dt, shape, required):
    if a is None:
        if required:
            raise ValueError(f"{name}: required for this mode")
        return
    _array(name, a, dt, shape=shape)


def rnn_recurrence_forward(mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act, reverse):
    g = _rnn_mode(mode)
    dt = _array("hbuf", hbuf, ndim=3)
    t1, b, n = hbuf.shape
    if t1 < 2:
        raise ValueError("hbuf: needs T+1 >= 2 slots")
    _array("xproj", xproj, dt, shape=(t1 - 1, b, g * n))
    _array("w_hh", w_hh, dt, shape=(g * n, n))
    _array("b_ih", b_ih, dt, shape=(g * n,))
    _array("b_hh", b_hh, dt, shape=(g * n,))
    _optional("cbuf", cbuf, dt, (t1, b, n), mode == 0)
    _optional("act", act, dt, (t1 - 1, b, 4 * n), mode == 1)
    stream, dev = _launch_args(xproj=xproj, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, hbuf=hbuf,
                               cbuf=cbuf, act=act)
    _ext.rnn_recurrence_forward(dt, mode, _ptr(xproj), _ptr(w_hh), _ptr(b_ih), _ptr(b_hh),
                                _ptr(hbuf), _ptr(cbuf if mode == 0 else None),
                                _ptr(act if mode == 1 else None), t1 - 1, b, n, bool(reverse),
                                stream, dev)


def rnn_recurrence_backward(mode, w_hh, hbuf, cbuf, act, dH, dc, dgx, dgh, dbx, dbh, reverse):
    g = _rnn_mode(mode)
    dt = _array("hbuf", hbuf, ndim=3)
    t1, b, n = hbuf.shape
    if t1 < 2:
        raise ValueError("hbuf: needs T+1 >= 2 slots")
    _array("w_hh", w_hh, dt, shape=(g * n, n))
    _array("dH", dH, dt, shape=(t1, b, n))
    _array("dgx", dgx, dt, shape=(t1 - 1, b, g * n))
    _array("dgh", dgh, dt, shape=(t1 - 1, b, g * n))
    _array("dbx", dbx, dt, shape=(g * n,))
    _array("dbh", dbh, dt, shape=(g * n,))
    if mode == 1 and (dgx is dgh or dbx is dbh):
        raise ValueError("dgh: the GRU needs separate dgx/dgh and dbx/dbh arrays")
    _optional("cbuf", cbuf, dt, (t1, b, n), mode == 0)
    _optional("act", act, dt, (t1 - 1, b, 4 * n if mode == 1 else g * n), mode <= 1)
    _optional("dc", dc, dt, (b, n), mode == 0)
    stream, dev = _launch_args(w_hh=w_hh, hbuf=hbuf, cbuf=cbuf, act=act, dH=dH, dc=dc, dgx=dgx,
                               dgh=dgh, dbx=dbx, dbh=dbh)
    _ext.rnn_recurrence_backward(dt, mode, _ptr(w_hh), _ptr(hbuf),
                                 _ptr(cbuf if mode == 0 else None),
                                 _ptr(act if mode <= 1 else None), _ptr(dH),
                                 _ptr(dc if mode == 0 else None), _ptr(dgx), _ptr(dgh),
                                 _ptr(dbx), _ptr(dbh), t1 - 1, b, n, bool(reverse), stream, dev)


# --------------------------------------------------------------------------- upsampling
# scale_h, scale_w: the scale factors the user gave (PyTorch's coordinate rule), or <= 0.


def _upsample_geom(x, y, xname, yname):
    dt = _array(xname, x, ndim=4)
    _array(yname, y, dt, ndim=4)
    if tuple(y.shape[:2]) != tuple(x.shape[:2]):
        raise ValueError(f"{yname}: batch/channels {tuple(y.shape[:2])} differ from {xname}'s "
                         f"{tuple(x.shape[:2])}")
    if min(x.shape) < 1 or min(y.shape) < 1:
        raise ValueError(f"{xname}/{yname}: empty arrays")
    return dt, (*x.shape, y.shape[2], y.shape[3])


def upsample_nearest2d_forward(x, y, scale_h, scale_w):
    dt, g = _upsample_geom(x, y, "x", "y")
    stream, dev = _launch_args(x=x, y=y)
    _ext.upsample_nearest2d_forward(dt, _ptr(x), _ptr(y), g, float(scale_h), float(scale_w),
                                    stream, dev)


def upsample_nearest2d_backward(dy, dx, scale_h, scale_w):
    dt, g = _upsample_geom(dx, dy, "dx", "dy")
    stream, dev = _launch_args(dy=dy, dx=dx)
    _ext.upsample_nearest2d_backward(dt, _ptr(dy), _ptr(dx), g, float(scale_h), float(scale_w),
                                     stream, dev)


def upsample_bilinear2d_forward(x, y, align_corners, scale_h, scale_w):
    dt, g = _upsample_geom(x, y, "x", "y")
    stream, dev = _launch_args(x=x, y=y)
    _ext.upsample_bilinear2d_forward(dt, _ptr(x), _ptr(y), g, bool(align_corners),
                                     float(scale_h), float(scale_w), stream, dev)


def upsample_bilinear2d_backward(dy, dx, align_corners, scale_h, scale_w):
    dt, g = _upsample_geom(dx, dy, "dx", "dy")
    stream, dev = _launch_args(dy=dy, dx=dx)
    _ext.upsample_bilinear2d_backward(dt, _ptr(dy), _ptr(dx), g, bool(align_corners),
                                      float(scale_h), float(scale_w), stream, dev)


# --------------------------------------------------------------------------- description


def describe() -> str:
    """One line for convnet.backends(): device, compute capability, build targets."""
    dev = _cupy().cuda.Device().id
    info = _ext.device_info(dev)
    major, minor = info["compute_capability"]
    rt = _ext.runtime_version()
    return (f"convnet._cuda on cuda:{dev} {info['name']} (sm_{major}{minor}, "
            f"{info['multiprocessors']} SMs, {info['total_memory'] / 2**30:.0f} GiB), "
            f"built for {_ext.compiled_archs()}, CUDA runtime {rt // 1000}.{rt % 1000 // 10}")
