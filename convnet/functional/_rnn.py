"""Recurrent layers and cells (LSTM, GRU, plain tanh/ReLU RNN) as autograd Functions.

One layer of a recurrent network (both directions when bidirectional) is one Function:
forward projects the inputs of every time step with one GEMM ((T*B, I) @ W_ih^T), then
runs the recurrence (per step: one GEMM h_{t-1} @ W_hh^T accumulated onto the projection
and one fused cell kernel, see ``convnet.kernels.rnn_recurrence_forward``); backward runs
backpropagation through time with the cell kernels and then forms every weight gradient
and the input gradient as one GEMM each over all time steps, so the time loop holds only
the small per-step GEMM and the element-wise cell.

The layer returns its output sequence and final states as one flat array; ``_Part`` views
cut it into tensors, which is how one Function has several differentiable outputs.
Gate order and parameter shapes are PyTorch's (``weight_ih`` (G*H, I), ``weight_hh``
(G*H, H), G = 4 for the LSTM (i, f, g, o), 3 for the GRU (r, z, n), 1 for the RNN).
"""

from __future__ import annotations

from .. import kernels as K
from ..autograd import Function
from ..tensor import Tensor
from ._ops import xp_of

MODES = K.RNN_MODES


_matmul = K.matmul


class _Part(Function):
    """packed[lo:hi] reshaped: one of the outputs a multi-output Function packed together."""

    def forward(self, packed, lo, hi, shape):
        self.save_for_backward(packed.shape, packed.dtype, lo, hi)
        return packed[lo:hi].reshape(shape)

    def backward(self, g):
        shape, dtype, lo, hi = self.saved
        out = xp_of(g).empty(shape, dtype=dtype)
        out[:lo] = 0
        out[lo:hi] = g.reshape(-1)
        out[hi:] = 0
        return out


class RecurrentLayer(Function):
    """One recurrent layer over a whole sequence, all its directions.

    Inputs: x (T, B, I), h0 (D, B, H), c0 (D, B, H) for the LSTM, then per direction w_ih,
    w_hh and, with biases, b_ih and b_hh. Output: one flat array
    [scratch (B*H) | output (T, B, D*H) | h_n (D, B, H) | c_n (D, B, H), LSTM only]; the
    scratch slot lets a one-direction layer keep its states (h0 then h_1..h_T) contiguous
    inside the output, with no copy.
    """

    def forward(self, x, h0, *rest, mode, directions, has_bias):
        lstm = mode == "lstm"
        c0 = rest[0] if lstm else None
        params = rest[1:] if lstm else rest
        per = 4 if has_bias else 2
        weights = [params[d * per:(d + 1) * per] for d in range(directions)]
        xp = xp_of(x)
        x = xp.ascontiguousarray(x)
        t_len, b, i_size = x.shape
        h = h0.shape[2]
        n_out = t_len * b * directions * h
        n_state = directions * b * h
        packed = xp.empty(b * h + n_out + n_state * (2 if lstm else 1), dtype=x.dtype)
        out = packed[b * h:b * h + n_out].reshape(t_len, b, directions * h)
        h_n = packed[b * h + n_out:b * h + n_out + n_state].reshape(directions, b, h)
        c_n = packed[b * h + n_out + n_state:].reshape(directions, b, h) if lstm else None
        x2 = x.reshape(t_len * b, i_size)
        records = []
        for d, w in enumerate(weights):
            w_ih, w_hh = w[0], w[1]
            # the biases are added by the cell kernels, not by this GEMM
            xproj = _matmul(x2, w_ih, trans_b=True)
            b_ih, b_hh = (w[2], w[3]) if has_bias else (None, None)
            hbuf = packed[:b * h + n_out].reshape(t_len + 1, b, h) if directions == 1 else None
            rec = K.rnn_recurrence_forward(
                mode, xproj.reshape(t_len, b, -1), w_hh, h0[d], None if c0 is None else c0[d],
                b_ih, b_hh, reverse=d == 1, hbuf=hbuf)
            if directions > 1:
                out[:, :, d * h:(d + 1) * h] = rec.outputs
            h_n[d] = rec.h_n
            if lstm:
                c_n[d] = rec.c_n
            records.append(rec)
        self.save_for_backward(x2, weights, records, (t_len, b, i_size, h, n_out, n_state),
                               mode, has_bias)
        return packed

    def backward(self, g):
        x2, weights, records, dims, mode, has_bias = self.saved
        t_len, b, i_size, h, n_out, n_state = dims
        lstm = mode == "lstm"
        directions = len(weights)
        xp = xp_of(g)
        dout = g[b * h:b * h + n_out].reshape(t_len, b, directions * h)
        dhn = g[b * h + n_out:b * h + n_out + n_state].reshape(directions, b, h)
        dcn = g[b * h + n_out + n_state:].reshape(directions, b, h) if lstm else None
        first_w = 3 if lstm else 2
        per = 4 if has_bias else 2
        need = self.needs_grad
        dx2 = None
        dh0 = xp.empty((directions, b, h), dtype=g.dtype) if need[1] else None
        dc0 = xp.empty((directions, b, h), dtype=g.dtype) if lstm and need[2] else None
        wgrads = []
        for d, (w, rec) in enumerate(zip(weights, records, strict=True)):
            w_ih, w_hh = w[0], w[1]
            if directions == 1 and g.flags.writeable and g.flags.c_contiguous:
                # g is this node's own fresh array, and for one direction its front is laid
                # out as the recurrence's state buffer: BPTT runs in it, without a copy
                work = g[:b * h + n_out].reshape(t_len + 1, b, h)
                dh_out = None
            else:
                work = None
                dh_out = dout[:, :, d * h:(d + 1) * h] if directions > 1 else dout
            dgx, dgh, dh0_d, dc0_d, dbx, dbh = K.rnn_recurrence_backward(
                rec, w_hh, dh_out, dhn[d], None if dcn is None else dcn[d], dH=work)
            if dh0 is not None:
                dh0[d] = dh0_d
            if dc0 is not None:
                dc0[d] = dc0_d
            dgx2 = dgx.reshape(t_len * b, -1)
            if need[0]:
                if dx2 is None:
                    dx2 = _matmul(dgx2, w_ih)
                else:
                    dx2 += _matmul(dgx2, w_ih)
            base = first_w + d * per
            # The weight gradients as their transposes, x^T @ dgates: the wide gate axis then
            # runs along the GEMM's columns, which suits its register tile (about 15-40%
            # faster than dgates^T @ x for 64 inputs); the transposed copy is small.
            dw_ih = _matmul(x2, dgx2, trans_a=True).T.copy() if need[base] else None
            dw_hh = None
            if need[base + 1]:
                prev = rec.previous.reshape(t_len * b, h)
                dw_hh = _matmul(prev, dgh.reshape(t_len * b, -1), trans_a=True).T.copy()
            wgrads += [dw_ih, dw_hh]
            if has_bias:
                wgrads += [dbx.copy() if need[base + 2] else None,
                           dbh.copy() if need[base + 3] else None]
        dx = None if dx2 is None else dx2.reshape(t_len, b, i_size)
        head = (dx, dh0, dc0) if lstm else (dx, dh0)
        return (*head, *wgrads)


def _zeros_state(like: Tensor, shape) -> Tensor:
    return Tensor._wrap(like._xp.zeros(shape, dtype=like.dtype), False)


def _check_state(name, state, shape, dtype):
    if not isinstance(state, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(state).__name__}")
    if state.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {state.shape}")
    if state.dtype != dtype:
        raise TypeError(f"{name}: dtype {state.dtype} differs from the input's {dtype}")


def recurrent_layer(input, weights, mode="lstm", h0=None, c0=None):
    """One recurrent layer over a sequence, PyTorch's gate order and weight shapes.

    input (T, B, I) time-major; weights: one tuple (w_ih, w_hh, b_ih, b_hh) per direction
    (two for a bidirectional layer; the biases may be None); mode "lstm", "gru",
    "rnn_tanh" or "rnn_relu"; h0, c0 (D, B, H) or None for zeros (c0: LSTM only).
    Returns (output (T, B, D*H), h_n (D, B, H), c_n (D, B, H) or None).
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a Tensor, got {type(input).__name__}")
    if input.ndim != 3:
        raise ValueError(f"input: expected a 3-D (seq, batch, feature) tensor, got shape "
                         f"{input.shape}")
    if not weights or len(weights) > 2:
        raise ValueError(f"weights: expected one or two directions, got {len(weights)}")
    t_len, b, i_size = input.shape
    if t_len < 1 or b < 1:
        raise ValueError(f"input: expected at least one step and one sequence, got shape "
                         f"{input.shape}")
    gates = K.RNN_GATES[mode]
    w_hh0 = weights[0][1]
    h = w_hh0.shape[1]
    has_bias = weights[0][2] is not None
    flat = []
    for d, w in enumerate(weights):
        if len(w) != 4:
            raise ValueError(f"weights[{d}]: expected (w_ih, w_hh, b_ih, b_hh), got {len(w)} "
                             "items")
        w_ih, w_hh, b_ih, b_hh = w
        if w_ih.shape != (gates * h, i_size):
            raise ValueError(f"weights[{d}]: w_ih has shape {w_ih.shape}, expected "
                             f"{(gates * h, i_size)} for {mode} with input size {i_size}")
        if w_hh.shape != (gates * h, h):
            raise ValueError(f"weights[{d}]: w_hh has shape {w_hh.shape}, expected "
                             f"{(gates * h, h)}")
        if (b_ih is not None) != has_bias or (b_hh is not None) != has_bias:
            raise ValueError(f"weights[{d}]: give both biases of every direction or none")
        for p in w:
            if p is not None and p.dtype != input.dtype:
                raise TypeError(f"input: dtype {input.dtype} differs from the weights' "
                                f"{p.dtype}")
        flat += [w_ih, w_hh] + ([b_ih, b_hh] if has_bias else [])
    directions = len(weights)
    shape = (directions, b, h)
    if h0 is None:
        h0 = _zeros_state(input, shape)
    else:
        _check_state("h0", h0, shape, input.dtype)
    args = [input, h0]
    if mode == "lstm":
        if c0 is None:
            c0 = _zeros_state(input, shape)
        else:
            _check_state("c0", c0, shape, input.dtype)
        args.append(c0)
    packed = RecurrentLayer.apply(*args, *flat, mode=mode, directions=directions,
                                  has_bias=has_bias)
    n_out = t_len * b * directions * h
    n_state = directions * b * h
    lo = b * h
    output = _Part.apply(packed, lo=lo, hi=lo + n_out, shape=(t_len, b, directions * h))
    h_n = _Part.apply(packed, lo=lo + n_out, hi=lo + n_out + n_state, shape=shape)
    c_n = None
    if mode == "lstm":
        c_n = _Part.apply(packed, lo=lo + n_out + n_state, hi=lo + n_out + 2 * n_state,
                          shape=shape)
    return output, h_n, c_n


def _cell(mode, input, h, c, w_ih, w_hh, b_ih, b_hh):
    if input.ndim != 2:
        raise ValueError(f"input: expected a 2-D (batch, feature) tensor, got shape "
                         f"{input.shape}")
    x = input.reshape(1, *input.shape)
    h0 = h.reshape(1, *h.shape) if h is not None else None
    c0 = c.reshape(1, *c.shape) if c is not None else None
    _, h_n, c_n = recurrent_layer(x, [(w_ih, w_hh, b_ih, b_hh)], mode, h0, c0)
    shape = h_n.shape[1:]
    return h_n.reshape(shape), (c_n.reshape(shape) if c_n is not None else None)


def lstm_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step: input (B, I), hx = (h, c) each (B, H) or None -> (h', c')."""
    h, c = hx if hx is not None else (None, None)
    return _cell("lstm", input, h, c, w_ih, w_hh, b_ih, b_hh)


def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step: input (B, I), hx (B, H) or None -> h'."""
    return _cell("gru", input, hx, None, w_ih, w_hh, b_ih, b_hh)[0]


def rnn_tanh_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One plain RNN step, h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return _cell("rnn_tanh", input, hx, None, w_ih, w_hh, b_ih, b_hh)[0]


def rnn_relu_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One plain RNN step with ReLU."""
    return _cell("rnn_relu", input, hx, None, w_ih, w_hh, b_ih, b_hh)[0]


__all__ = ["recurrent_layer", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell",
           "RecurrentLayer"]
