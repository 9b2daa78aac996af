"""The recurrent kernels written once in array code (NumPy or CuPy), for backends that have
no compiled recurrent-cell kernels yet: the CUDA backend runs the RNN layers on CuPy with
these (cuBLAS GEMMs, element-wise CuPy ops) until csrc/cuda mirrors csrc/cpu/rnn.cpp.

Same backend-level signatures as ``convnet._C`` and ``convnet.kernels._numba``: outputs
preallocated and overwritten, the dtype of the inputs kept. The formulas are those of
``convnet.kernels.reference``; the whole-sequence recurrence is its loop over these cells.
"""

from __future__ import annotations

import sys

from ._checks import xp_of
from .reference import recurrence_backward_loop, recurrence_forward_loop


def _sigmoid(x, xp):
    # the tanh form never overflows (1 / (1 + exp(-x)) does for x < -88 in float32)
    return 0.5 * (1 + xp.tanh(0.5 * x))


def gemm(a, b, c, alpha, beta, trans_a, trans_b):
    """c = alpha * op(a) @ op(b) + beta * c, in place."""
    prod = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if beta == 0:
        c[...] = alpha * prod if alpha != 1 else prod
    else:
        c *= c.dtype.type(beta)
        c += prod if alpha == 1 else c.dtype.type(alpha) * prod


def lstm_cell_forward(gates, bias, c_prev, h, c, act):
    xp = xp_of(gates)
    n = c_prev.shape[1]
    pre = gates + bias
    i, f = _sigmoid(pre[:, :n], xp), _sigmoid(pre[:, n:2 * n], xp)
    g, o = xp.tanh(pre[:, 2 * n:3 * n]), _sigmoid(pre[:, 3 * n:], xp)
    c_new = f * c_prev + i * g
    h[...] = o * xp.tanh(c_new)
    c[...] = c_new
    act[...] = xp.concatenate([i, f, g, o], axis=1)


def lstm_cell_backward(act, c_prev, c, dh, dc, dgates, dc_prev, db, accumulate):
    xp = xp_of(act)
    n = c_prev.shape[1]
    i, f, g, o = act[:, :n], act[:, n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    tc = xp.tanh(c)
    dct = dc + dh * o * (1 - tc * tc)
    d = xp.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f),
                        dct * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
    dc_prev[...] = dct * f
    dgates[...] = d
    s = d.sum(axis=0)
    db[...] = db + s if accumulate else s


def gru_cell_forward(gx, gh, b_ih, b_hh, h_prev, h, act):
    xp = xp_of(gx)
    n = h_prev.shape[1]
    x_ = gx + b_ih
    h_ = gh + b_hh
    r = _sigmoid(x_[:, :n] + h_[:, :n], xp)
    z = _sigmoid(x_[:, n:2 * n] + h_[:, n:2 * n], xp)
    hn = h_[:, 2 * n:]
    cand = xp.tanh(x_[:, 2 * n:] + r * hn)
    h[...] = cand + z * (h_prev - cand)
    act[...] = xp.concatenate([r, z, cand, hn], axis=1)


def gru_cell_backward(act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh, accumulate):
    xp = xp_of(act)
    n = h_prev.shape[1]
    r, z, cand, hn = act[:, :n], act[:, n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    dn = dh * (1 - z) * (1 - cand * cand)
    dz = dh * (h_prev - cand) * z * (1 - z)
    dr = dn * hn * r * (1 - r)
    gx = xp.concatenate([dr, dz, dn], axis=1)
    gh = xp.concatenate([dr, dz, dn * r], axis=1)
    dgx[...] = gx
    dgh[...] = gh
    if accumulate:
        dh_prev += dh * z
        dbx += gx.sum(axis=0)
        dbh += gh.sum(axis=0)
    else:
        dh_prev[...] = dh * z
        dbx[...] = gx.sum(axis=0)
        dbh[...] = gh.sum(axis=0)


def rnn_cell_forward(pre, bias, h, relu):
    xp = xp_of(pre)
    v = pre + bias
    h[...] = xp.maximum(v, 0) if relu else xp.tanh(v)


def rnn_cell_backward(h, dh, dpre, db, relu, accumulate):
    xp = xp_of(h)
    d = xp.where(h > 0, dh, 0) if relu else dh * (1 - h * h)
    dpre[...] = d
    s = d.sum(axis=0)
    db[...] = db + s if accumulate else s


def rnn_recurrence_forward(mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act, reverse):
    recurrence_forward_loop(sys.modules[__name__], mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf,
                            act, reverse)


def rnn_recurrence_backward(mode, w_hh, hbuf, cbuf, act, dH, dc, dgx, dgh, dbx, dbh, reverse):
    recurrence_backward_loop(sys.modules[__name__], mode, w_hh, hbuf, cbuf, act, dH, dc, dgx,
                             dgh, dbx, dbh, reverse)
