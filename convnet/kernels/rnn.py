"""Recurrent cells and whole-sequence recurrences."""

from __future__ import annotations

from . import _checks as ck
from ._boundary import launch

__all__ = [
    "RNN_MODES", "RNN_GATES", "lstm_cell_forward", "lstm_cell_backward", "gru_cell_forward",
    "gru_cell_backward", "rnn_cell_forward", "rnn_cell_backward", "Recurrence",
    "rnn_recurrence_forward", "rnn_recurrence_backward",
]
#
# One time step of an LSTM, GRU or plain RNN cell over a batch, gate order as PyTorch's
# (LSTM i, f, g, o; GRU r, z, n). The cell kernels take the gate pre-activations, i.e. the
# two projections x W_ih^T and h W_hh^T are GEMMs done by the caller; the recurrence
# functions below run a whole sequence that way: the per-step GEMM, then the fused cell.


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
    out_h, out_c, act = xp.empty_like(c_prev), xp.empty_like(c_prev), xp.empty_like(gates)
    launch("lstm_cell_forward", backend, gates, bias, c_prev, out_h, out_c, act)
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
    dgates, dc_prev, db = xp.empty_like(act), xp.empty_like(c_prev), xp.empty(4 * h, dt)
    launch("lstm_cell_backward", backend, act, c_prev, c, dh, dc, dgates, dc_prev, db, False)
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
    out, act = xp.empty_like(h_prev), xp.empty((b, 4 * h), dt)
    launch("gru_cell_forward", backend, gx, gh, b_ih, b_hh, h_prev, out, act)
    return out, act


def gru_cell_backward(act, h_prev, dh, *, backend=None):
    """Gradients of one GRU step -> (dgx, dgh (B, 3H) w.r.t. gx and gh + b_hh, dh_prev (B, H)
    through the z path only (add dgh @ W_hh for the rest), dbx, dbh (3H,) batch sums)."""
    h_prev = _state("h_prev", h_prev)
    b, h = h_prev.shape
    dt = h_prev.dtype
    act = _matrix("act", act, dt, b, 4 * h, "(batch, 4 * hidden)")
    dh = _matrix("dh", dh, dt, b, h, "(batch, hidden)")
    xp = ck.xp_of(h_prev)
    dgx, dgh = xp.empty((b, 3 * h), dt), xp.empty((b, 3 * h), dt)
    dh_prev, dbx, dbh = xp.empty_like(h_prev), xp.empty(3 * h, dt), xp.empty(3 * h, dt)
    launch("gru_cell_backward", backend, act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh, False)
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
    out = xp.empty_like(pre)
    launch("rnn_cell_forward", backend, pre, bias, out, relu)
    return out


def rnn_cell_backward(h, dh, nonlinearity="tanh", *, backend=None):
    """h (B, H) the step's output, dh (B, H) -> (dpre (B, H), db (H,) batch sums)."""
    relu = _relu_flag(nonlinearity)
    h = _state("h", h)
    dh = _matrix("dh", dh, h.dtype, h.shape[0], h.shape[1], "(batch, hidden)")
    xp = ck.xp_of(h)
    dpre, db = xp.empty_like(h), xp.empty(h.shape[1], h.dtype)
    launch("rnn_cell_backward", backend, h, dh, dpre, db, relu, False)
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
    first = t_len if reverse else 0
    hbuf[first] = h0
    cbuf = act = None
    if mode == "lstm":
        cbuf = xp.empty((t_len + 1, b, h), dt)
        cbuf[first] = c0
    elif mode == "gru":
        act = xp.empty((t_len, b, 4 * h), dt)
    launch("rnn_recurrence_forward", backend, RNN_MODES.index(mode), xproj, w_hh, b_ih, b_hh,
           hbuf, cbuf, act, bool(reverse))
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
    launch("rnn_recurrence_backward", backend, RNN_MODES.index(mode), w_hh, hbuf, rec.cbuf,
           rec.act, dH, dc0, dgx, dgh, dbx, dbh, rec.reverse)
    return dgx, dgh, dH[h0_slot], dc0, dbx, dbh

