"""The ``cuda`` backend: the kernels of ``convnet._cuda`` on CuPy arrays.

Same backend-level functions and arguments as ``convnet._C`` (the manifest,
``convnet/kernels/spec.py``). Calls arrive through the validation boundary
(``convnet.kernels._boundary``), which has checked every array (CuPy, dtype, C-contiguous,
shapes against each other, no overlap) and scalar; this adapter checks that the arrays
live on the current device, then passes the device pointers and element counts of the
buffers (in the manifest's order, scratch buffers last), the sizes, CuPy's current stream
and device to the extension, which checks the counts against the sizes.
Scratch memory (the convolutions' index tables, batch norm's partial sums) comes from
CuPy's memory pool. CuPy is imported lazily, so this module loads on machines without it.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import _cuda as _ext  # ImportError when the extension was not built
from . import precision, spec


def _cupy():
    import cupy

    return cupy


def _is_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


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


def _bufs(*arrays):
    """(device pointers, element counts) of a kernel's buffers; None is (0, 0)."""
    return [_ptr(a) for a in arrays], [0 if a is None else int(a.size) for a in arrays]


def _dt(a) -> str:
    return str(a.dtype)


# 16-bit operands always run on tensor cores (float32 accumulation); float32 ones do when
# TF32 is allowed (convnet.backends.cuda.matmul / cudnn .allow_tf32). bfloat16 is CuPy's
# ml_dtypes bfloat16 dtype (CuPy >= 14 with ml_dtypes installed): its name is "bfloat16".
_TC_DTYPES = ("float16", "bfloat16")


def _tensor_cores(a, tf32_allowed) -> str | None:
    """The dtype name to run on the tensor-core kernels, or None for the CUDA-core ones."""
    dt = _dt(a)
    if dt in _TC_DTYPES or (dt == "float32" and tf32_allowed):
        return dt
    return None


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
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    stream, dev = _launch_args(a=a, b=b, c=c)
    tc = _tensor_cores(a, precision.matmul_tf32())
    if tc is not None:  # c may be float32 under 16-bit operands (backend-level callers)
        _ext.gemm_tc(tc, _dt(c), *_bufs(a, b, c), m, n, k, a.shape[1], b.shape[1], n,
                     float(alpha), float(beta), bool(trans_a), bool(trans_b), stream, dev)
        return
    _ext.gemm(_dt(a), *_bufs(a, b, c), m, n, k, a.shape[1], b.shape[1], n, float(alpha),
              float(beta), bool(trans_a), bool(trans_b), stream, dev)


# --------------------------------------------------------------------------- convolution


def _conv_geom(x_shape, w_shape, y_shape, *args):
    n, c, h, w = x_shape
    return (n, c, h, w, w_shape[0], w_shape[2], w_shape[3], y_shape[2], y_shape[3], *args)


def conv2d_forward(x, w, b, y, sh, sw, ph, pw, dh, dw):
    g = _conv_geom(x.shape, w.shape, y.shape, sh, sw, ph, pw, dh, dw)
    stream, dev = _launch_args(x=x, w=w, b=b, y=y)
    table = _device_table("conv", dev, *g[1:4], *g[5:7], dh, dw)
    tc = _tensor_cores(x, precision.conv_tf32())
    if tc is None:
        _ext.conv2d_forward(_dt(x), *_bufs(x, w, b, y, table), g, stream, dev)
        return
    # the tensor-core epilogue adds the bias in float32 (a 16-bit one is widened: K values)
    if b is not None and _dt(b) != "float32":
        b = b.astype(np.float32)
    _ext.conv2d_forward_tc(tc, *_bufs(x, w, b, y, table), g, stream, dev)


def conv2d_backward_data(dy, w, dx, sh, sw, ph, pw, dh, dw):
    g = _conv_geom(dx.shape, w.shape, dy.shape, sh, sw, ph, pw, dh, dw)
    stream, dev = _launch_args(dy=dy, w=w, dx=dx)
    n, c, h, wd, k, r, s, p, q = g[:9]
    table = _device_table("dgrad", dev, k, c, p, q, r, s, dh, dw)
    tc = _tensor_cores(dy, precision.conv_tf32())
    if tc is None:
        _ext.conv2d_backward_data(_dt(dy), *_bufs(dy, w, dx, table), g, stream, dev)
        return
    _ext.conv2d_backward_data_tc(tc, *_bufs(dy, w, dx, table), g, stream, dev)


def conv2d_backward_weight(dy, x, dw_out, sh, sw, ph, pw, dh, dw):
    g = _conv_geom(x.shape, dw_out.shape, dy.shape, sh, sw, ph, pw, dh, dw)
    stream, dev = _launch_args(dy=dy, x=x, dw_out=dw_out)
    table = _device_table("conv", dev, *g[1:4], *g[5:7], dh, dw)
    tc = _tensor_cores(dy, precision.conv_tf32())
    if tc is None:
        _ext.conv2d_backward_weight(_dt(dy), *_bufs(dy, x, dw_out, table), g, stream, dev)
        return
    # a 16-bit dw: the split reduction adds up in float32 scratch, rounded once at the end
    out = _dt(dw_out)
    work = None if out == "float32" else _cupy().empty((dw_out.size,), dtype=np.float32)
    _ext.conv2d_backward_weight_tc(tc, out, *_bufs(dy, x, dw_out, table, work), g, stream, dev)


def conv2d_backward_bias(dy, db):
    stream, dev = _launch_args(dy=dy, db=db)
    if _dt(dy) in _TC_DTYPES:  # a reduction, not a GEMM: summed in float32 by CuPy
        db[...] = dy.astype(np.float32).sum(axis=(0, 2, 3)).astype(db.dtype)
        return
    _ext.conv2d_backward_bias(_dt(dy), *_bufs(dy, db), *dy.shape, stream, dev)


def conv2d_forward_act(x, w, b, y, sh, sw, ph, pw, dh, dw, act, p1, p2):
    g = _conv_geom(x.shape, w.shape, y.shape, sh, sw, ph, pw, dh, dw)
    stream, dev = _launch_args(x=x, w=w, b=b, y=y)
    table = _device_table("conv", dev, *g[1:4], *g[5:7], dh, dw)
    _ext.conv2d_forward_act(_dt(x), *_bufs(x, w, b, y, table), g, int(act), float(p1),
                            float(p2), stream, dev)


def linear_forward_act(x, w, b, y, act, p1, p2):
    stream, dev = _launch_args(x=x, w=w, b=b, y=y)
    _ext.linear_forward_act(_dt(x), *_bufs(x, w, b, y), x.shape[0], w.shape[0], x.shape[1],
                            int(act), float(p1), float(p2), stream, dev)


# The boundary runs a 16-bit call as `<kernel>_<dtype>` when the backend has one (else in
# float32 on widened copies): these are the tensor-core kernels above (the bias gradient,
# a reduction, sums in float32).
for _k in ("gemm", "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight",
           "conv2d_backward_bias"):
    for _d in _TC_DTYPES:
        globals()[f"{_k}_{_d}"] = globals()[_k]


# --------------------------------------------------------------------------- pooling


def _pool_geom(x, y, *window):
    return (*x.shape, *y.shape[2:], *window)


def max_pool2d_forward(x, y, indices, kh, kw, sh, sw, ph, pw):
    stream, dev = _launch_args(x=x, y=y, indices=indices)
    _ext.max_pool2d_forward(_dt(x), *_bufs(x, y, indices),
                            _pool_geom(x, y, kh, kw, sh, sw, ph, pw), stream, dev)


def max_pool2d_backward(dy, indices, dx):
    stream, dev = _launch_args(dy=dy, indices=indices, dx=dx)
    # the window is in the indices (checked in range by the boundary): only sizes matter
    _ext.max_pool2d_backward(_dt(dy), *_bufs(dy, indices, dx),
                             _pool_geom(dx, dy, 1, 1, 1, 1, 0, 0), stream, dev)


def avg_pool2d_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad):
    stream, dev = _launch_args(x=x, y=y)
    _ext.avg_pool2d_forward(_dt(x), *_bufs(x, y), _pool_geom(x, y, kh, kw, sh, sw, ph, pw),
                            bool(count_include_pad), stream, dev)


def avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, count_include_pad):
    stream, dev = _launch_args(dy=dy, dx=dx)
    _ext.avg_pool2d_backward(_dt(dy), *_bufs(dy, dx), _pool_geom(dx, dy, kh, kw, sh, sw, ph, pw),
                             bool(count_include_pad), stream, dev)


# --------------------------------------------------------------------------- batch norm
# The kernels' float64 scratch (partial sums) is the last buffer.


def _workspace(n, c, l_, dev):
    return _cupy().empty((_ext.batch_norm_workspace(n, c, l_, dev),), dtype=np.float64)


def batch_norm_forward_training(x, weight, bias, y, mean, var, invstd, eps):
    stream, dev = _launch_args(x=x, weight=weight, bias=bias, y=y, mean=mean, var=var,
                               invstd=invstd)
    work = _workspace(*x.shape, dev)
    _ext.batch_norm_forward_training(_dt(x), *_bufs(x, weight, bias, y, mean, var, invstd, work),
                                     *x.shape, float(eps), stream, dev)


def batch_norm_forward_inference(x, weight, bias, running_mean, running_var, y, eps):
    stream, dev = _launch_args(x=x, weight=weight, bias=bias, running_mean=running_mean,
                               running_var=running_var, y=y)
    work = _cupy().empty((2 * x.shape[1],), dtype=np.float64)
    _ext.batch_norm_forward_inference(
        _dt(x), *_bufs(x, weight, bias, running_mean, running_var, y, work), *x.shape,
        float(eps), stream, dev)


def batch_norm_backward(dy, x, weight, mean, invstd, dx, dweight, dbias):
    stream, dev = _launch_args(dy=dy, x=x, weight=weight, mean=mean, invstd=invstd, dx=dx,
                               dweight=dweight, dbias=dbias)
    work = _workspace(*x.shape, dev)
    _ext.batch_norm_backward(_dt(x), *_bufs(dy, x, weight, mean, invstd, dx, dweight, dbias, work),
                             *x.shape, stream, dev)


# --------------------------------------------------------------------------- activations
# Every activation of the manifest, forward (x, y, *params) and backward (dy, saved, dx,
# *params): its buffers, then its scalars as a list.


def _elementwise(name, n_arrays):
    def run(*args):
        arrays, params = args[:n_arrays], args[n_arrays:]
        stream, dev = _launch_args(**{f"a{i}": a for i, a in enumerate(arrays)})
        getattr(_ext, name)(_dt(arrays[0]), *_bufs(*arrays), [float(p) for p in params],
                            stream, dev)
    run.__name__ = name
    return run


for _k in spec.KERNELS:
    if _k.op == "activation":
        globals()[_k.name] = _elementwise(
            _k.name, sum(a.role in spec.ARRAY_ROLES for a in _k.args))


# --------------------------------------------------------------------------- recurrent cells
# Same layouts and aliasing as convnet._C's (csrc/cpu/rnn.cpp): act may be gates in the LSTM
# forward, dc_prev may be dc in its backward, h may be pre in the plain cell.


def lstm_cell_forward(gates, bias, c_prev, h, c, act):
    stream, dev = _launch_args(gates=gates, bias=bias, c_prev=c_prev, h=h, c=c, act=act)
    _ext.lstm_cell_forward(_dt(c_prev), *_bufs(gates, bias, c_prev, h, c, act), *c_prev.shape,
                           stream, dev)


def lstm_cell_backward(act, c_prev, c, dh, dc, dgates, dc_prev, db, accumulate):
    stream, dev = _launch_args(act=act, c_prev=c_prev, c=c, dh=dh, dc=dc, dgates=dgates,
                               dc_prev=dc_prev, db=db)
    _ext.lstm_cell_backward(_dt(c_prev), *_bufs(act, c_prev, c, dh, dc, dgates, dc_prev, db),
                            *c_prev.shape, bool(accumulate), stream, dev)


def gru_cell_forward(gx, gh, b_ih, b_hh, h_prev, h, act):
    stream, dev = _launch_args(gx=gx, gh=gh, b_ih=b_ih, b_hh=b_hh, h_prev=h_prev, h=h, act=act)
    _ext.gru_cell_forward(_dt(h_prev), *_bufs(gx, gh, b_ih, b_hh, h_prev, h, act), *h_prev.shape,
                          stream, dev)


def gru_cell_backward(act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh, accumulate):
    stream, dev = _launch_args(act=act, h_prev=h_prev, dh=dh, dgx=dgx, dgh=dgh, dh_prev=dh_prev,
                               dbx=dbx, dbh=dbh)
    _ext.gru_cell_backward(_dt(h_prev), *_bufs(act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh),
                           *h_prev.shape, bool(accumulate), stream, dev)


def rnn_cell_forward(pre, bias, h, relu):
    stream, dev = _launch_args(pre=pre, bias=bias, h=h)
    _ext.rnn_cell_forward(_dt(pre), *_bufs(pre, bias, h), *pre.shape, bool(relu), stream, dev)


def rnn_cell_backward(h, dh, dpre, db, relu, accumulate):
    stream, dev = _launch_args(h=h, dh=dh, dpre=dpre, db=db)
    _ext.rnn_cell_backward(_dt(h), *_bufs(h, dh, dpre, db), *h.shape, bool(relu),
                           bool(accumulate), stream, dev)


def rnn_recurrence_forward(mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act, reverse):
    t1, b, n = hbuf.shape
    stream, dev = _launch_args(xproj=xproj, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, hbuf=hbuf,
                               cbuf=cbuf, act=act)
    _ext.rnn_recurrence_forward(_dt(hbuf), mode, *_bufs(xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act),
                                t1 - 1, b, n, bool(reverse), stream, dev)


def rnn_recurrence_backward(mode, w_hh, hbuf, cbuf, act, dH, dc, dgx, dgh, dbx, dbh, reverse):
    t1, b, n = hbuf.shape
    stream, dev = _launch_args(w_hh=w_hh, hbuf=hbuf, cbuf=cbuf, act=act, dH=dH, dc=dc, dgx=dgx,
                               dgh=dgh, dbx=dbx, dbh=dbh)
    _ext.rnn_recurrence_backward(_dt(hbuf), mode,
                                 *_bufs(w_hh, hbuf, cbuf, act, dH, dc, dgx, dgh, dbx, dbh),
                                 t1 - 1, b, n, bool(reverse), stream, dev)


# --------------------------------------------------------------------------- upsampling
# scale_h, scale_w: the scale factors the user gave (PyTorch's coordinate rule), or <= 0.


def upsample_nearest2d_forward(x, y, scale_h, scale_w):
    stream, dev = _launch_args(x=x, y=y)
    _ext.upsample_nearest2d_forward(_dt(x), *_bufs(x, y), (*x.shape, *y.shape[2:]),
                                    float(scale_h), float(scale_w), stream, dev)


def upsample_nearest2d_backward(dy, dx, scale_h, scale_w):
    stream, dev = _launch_args(dy=dy, dx=dx)
    _ext.upsample_nearest2d_backward(_dt(dy), *_bufs(dy, dx), (*dx.shape, *dy.shape[2:]),
                                     float(scale_h), float(scale_w), stream, dev)


def upsample_bilinear2d_forward(x, y, align_corners, scale_h, scale_w):
    stream, dev = _launch_args(x=x, y=y)
    _ext.upsample_bilinear2d_forward(_dt(x), *_bufs(x, y), (*x.shape, *y.shape[2:]),
                                     bool(align_corners), float(scale_h), float(scale_w),
                                     stream, dev)


def upsample_bilinear2d_backward(dy, dx, align_corners, scale_h, scale_w):
    stream, dev = _launch_args(dy=dy, dx=dx)
    _ext.upsample_bilinear2d_backward(_dt(dy), *_bufs(dy, dx), (*dx.shape, *dy.shape[2:]),
                                      bool(align_corners), float(scale_h), float(scale_w),
                                      stream, dev)


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
