"""The recurrence loop of one layer direction, over any backend's kernels.

Used by the Numba backend and the float64 reference: their cells differ, the loop of
per-step GEMMs and cell calls is the same plumbing.
"""


# The recurrence of one layer direction over a sequence, as a loop of per-step GEMMs and
# cell kernels taken from ``ops`` (this module, or the Numba backend, whose own
# rnn_recurrence_* are this loop over its kernels). mode: 0 lstm, 1 gru, 2 rnn_tanh,
# 3 rnn_relu. Buffers and conventions as the C++ rnn_recurrence_forward/backward: hbuf and
# cbuf (T+1, B, H) hold the states in time order with the initial one at slot 0 (slot T
# when reverse).

def recurrence_forward_loop(ops, mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act, reverse):
    t_len = xproj.shape[0]
    bias = b_ih + b_hh
    order = range(t_len - 1, -1, -1) if reverse else range(t_len)
    off_out, off_prev = (0, 1) if reverse else (1, 0)
    gh = xproj[0].copy() if mode == 1 else None  # scratch on xproj's device (NumPy or CuPy)
    for t in order:
        prev = hbuf[t + off_prev]
        if mode == 0:
            ops.gemm(prev, w_hh, xproj[t], 1.0, 1.0, False, True)
            ops.lstm_cell_forward(xproj[t], bias, cbuf[t + off_prev], hbuf[t + off_out],
                                  cbuf[t + off_out], xproj[t])
        elif mode == 1:
            ops.gemm(prev, w_hh, gh, 1.0, 0.0, False, True)
            ops.gru_cell_forward(xproj[t], gh, b_ih, b_hh, prev, hbuf[t + off_out], act[t])
        else:
            ops.gemm(prev, w_hh, xproj[t], 1.0, 1.0, False, True)
            ops.rnn_cell_forward(xproj[t], bias, hbuf[t + off_out], mode == 3)


def recurrence_backward_loop(ops, mode, w_hh, hbuf, cbuf, act, dH, dc, dgx, dgh, dbx, dbh,
                             reverse):
    t_len = hbuf.shape[0] - 1
    order = range(t_len) if reverse else range(t_len - 1, -1, -1)
    off_out, off_prev = (0, 1) if reverse else (1, 0)
    dbx[...] = 0
    dbh[...] = 0
    for t in order:
        dprev, dh = dH[t + off_prev], dH[t + off_out]
        if mode == 0:
            ops.lstm_cell_backward(act[t], cbuf[t + off_prev], cbuf[t + off_out], dh, dc, dgx[t],
                                   dc, dbx, True)
            ops.gemm(dgx[t], w_hh, dprev, 1.0, 1.0, False, False)
        elif mode == 1:
            ops.gru_cell_backward(act[t], hbuf[t + off_prev], dh, dgx[t], dgh[t], dprev, dbx, dbh,
                                  True)
            ops.gemm(dgh[t], w_hh, dprev, 1.0, 1.0, False, False)
        else:
            ops.rnn_cell_backward(hbuf[t + off_out], dh, dgx[t], dbx, mode == 3, True)
            ops.gemm(dgx[t], w_hh, dprev, 1.0, 1.0, False, False)
