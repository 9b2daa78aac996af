"""Recurrent layers and cells with PyTorch's interface: ``RNN``, ``LSTM``, ``GRU`` and
``RNNCell``, ``LSTMCell``, ``GRUCell``.

Constructor arguments, parameter names and shapes (``weight_ih_l0``, ``weight_hh_l0``,
``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``), gate order and initialisation
(U(-1/sqrt(hidden), 1/sqrt(hidden))) are PyTorch's, so state dicts load both ways.

Beyond PyTorch, the sequence layers take ``stateful=True`` (Keras's name): the final state
of each call, detached from the graph, becomes the initial state of the next call that
gives none, which is truncated backpropagation through time over consecutive chunks of a
long series; ``reset_state()`` starts a new series. See also
``convnet.nn.utils.detach_state`` and ``tbptt_chunks`` for the explicit loop.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..functional import _rnn
from ..kernels._checks import positive_int
from ..tensor import Tensor
from . import init
from .module import Module, Parameter

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _check_input(input, input_size, dtype, batched_ndim):
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a Tensor, got {type(input).__name__}")
    if input.ndim not in (batched_ndim - 1, batched_ndim):
        raise ValueError(f"input: expected a {batched_ndim}-D (batched) or "
                         f"{batched_ndim - 1}-D (unbatched) tensor, got shape {input.shape}")
    if input.shape[-1] != input_size:
        raise ValueError(f"input: expected {input_size} features (input_size) in the last "
                         f"dimension, got shape {input.shape}")
    if input.dtype != dtype:
        raise TypeError(f"input: dtype {input.dtype} differs from the parameters' {dtype} "
                        "(convert the input, or the module with .double()/.float())")


def _check_state(name, state, expected, dtype, batch_axis):
    if not isinstance(state, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(state).__name__}")
    if state.ndim != len(expected):
        raise ValueError(f"{name}: expected a {len(expected)}-D tensor of shape {expected}, "
                         f"got shape {state.shape}")
    if batch_axis is not None and state.shape[batch_axis] != expected[batch_axis]:
        raise ValueError(f"{name}: batch size {state.shape[batch_axis]} differs from the "
                         f"input's {expected[batch_axis]} (expected shape {expected})")
    if state.shape != expected:
        raise ValueError(f"{name}: expected shape {expected}, got {state.shape}")
    if state.dtype != dtype:
        raise TypeError(f"{name}: dtype {state.dtype} differs from the input's {dtype}")


class RNNBase(Module):
    """Shared by RNN, LSTM and GRU: PyTorch's arguments and parameter layout."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, stateful: bool = False, dtype=np.float32):
        super().__init__()
        self.mode = mode
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        if not 0.0 <= float(dropout) <= 1.0 or isinstance(dropout, bool):
            raise ValueError(f"dropout: expected a probability in [0, 1], got {dropout!r}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.stateful = bool(stateful)
        self._state = None
        directions = 2 if bidirectional else 1
        gates = _GATES[mode] * hidden_size
        names = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * directions
            for d in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes = [(f"weight_ih{sfx}", (gates, layer_in)),
                          (f"weight_hh{sfx}", (gates, hidden_size))]
                if bias:
                    shapes += [(f"bias_ih{sfx}", (gates,)), (f"bias_hh{sfx}", (gates,))]
                for name, shape in shapes:
                    setattr(self, name, Parameter(np.empty(shape, dtype)))
                    names.append(name)
        self._flat_weights_names = names
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _kind(self) -> str:
        return {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}.get(self.mode, self.mode.lower())

    def reset_parameters(self):
        k = 1.0 / math.sqrt(self.hidden_size)
        for name in self._flat_weights_names:
            init.uniform_(getattr(self, name), -k, k)

    def flatten_parameters(self):
        """PyTorch's cuDNN memory-layout hook; the weights here are used as they are."""

    def reset_state(self):
        """Forget the state carried between calls by a ``stateful`` layer."""
        self._state = None

    def _layer_weights(self, layer):
        out = []
        for d in range(self.num_directions):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            w = [getattr(self, f"weight_ih{sfx}"), getattr(self, f"weight_hh{sfx}")]
            w += ([getattr(self, f"bias_ih{sfx}"), getattr(self, f"bias_hh{sfx}")]
                  if self.bias else [None, None])
            out.append(tuple(w))
        return out

    def _initial_state(self, hx, batch, batched, dtype):
        """(h0, c0) as batched (L*D, B, H) tensors or None, checked against the input."""
        lstm = self.mode == "LSTM"
        if hx is None and self.stateful and self._state is not None:
            h0, c0 = self._state
            if h0.shape[1] != batch:
                raise ValueError(f"input: batch size {batch} differs from the {h0.shape[1]} of "
                                 "the state a stateful layer carries; call reset_state() "
                                 "first")
            return h0, c0
        if hx is None:
            return None, None
        ld = self.num_layers * self.num_directions
        expected = (ld, batch, self.hidden_size) if batched else (ld, self.hidden_size)
        batch_axis = 1 if batched else None
        if lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: the LSTM expects a tuple (h0, c0), got "
                                f"{type(hx).__name__}")
            h0, c0 = hx
            _check_state("h0", h0, expected, dtype, batch_axis)
            _check_state("c0", c0, expected, dtype, batch_axis)
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError(f"hx: {type(self).__name__} expects one tensor h0, got a "
                                f"{type(hx).__name__}")
            h0, c0 = hx, None
            _check_state("hx", h0, expected, dtype, batch_axis)
        if not batched:
            h0 = h0.unsqueeze(1)
            c0 = c0.unsqueeze(1) if c0 is not None else None
        return h0, c0

    def forward(self, input, hx=None):
        w0 = getattr(self, self._flat_weights_names[0])
        _check_input(input, self.input_size, w0.dtype, 3)
        batched = input.ndim == 3
        if not batched:
            x = input.unsqueeze(1)
        elif self.batch_first:
            x = input.transpose(0, 1)
        else:
            x = input
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"input: expected at least one time step and one sequence, got "
                             f"shape {input.shape}")
        batch = x.shape[1]
        h0, c0 = self._initial_state(hx, batch, batched, input.dtype)
        kind = self._kind()
        d = self.num_directions
        h_list, c_list = [], []
        for layer in range(self.num_layers):
            sl = slice(layer * d, (layer + 1) * d)
            h0_l = h0[sl] if h0 is not None else None
            c0_l = c0[sl] if c0 is not None else None
            x, h_n, c_n = _rnn.recurrent_layer(x, self._layer_weights(layer), kind, h0_l, c0_l)
            h_list.append(h_n)
            c_list.append(c_n)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = F.cat(h_list, 0) if len(h_list) > 1 else h_list[0]
        c_n = None
        if self.mode == "LSTM":
            c_n = F.cat(c_list, 0) if len(c_list) > 1 else c_list[0]
        if self.stateful:
            self._state = (h_n.detach(), c_n.detach() if c_n is not None else None)
        if not batched:
            x = x.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        elif self.batch_first:
            x = x.transpose(0, 1)
        return (x, (h_n, c_n)) if self.mode == "LSTM" else (x, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.stateful:
            s += ", stateful=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.

    input (T, B, I) ((B, T, I) with batch_first, or unbatched (T, I)), hx (L*D, B, H) ->
    (output (T, B, D*H), h_n (L*D, B, H)).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, stateful=False,
                 dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         stateful=stateful, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (gates i, f, g, o as PyTorch).

    input (T, B, I) ((B, T, I) with batch_first, or unbatched (T, I)), hx = (h0, c0) each
    (L*D, B, H) or None -> (output (T, B, D*H), (h_n, c_n)).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, stateful=False,
                 dtype=np.float32):
        if proj_size:
            raise ValueError("proj_size: projected LSTMs are not supported (use 0)")
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, stateful=stateful, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit (gates r, z, n as PyTorch: n = tanh(W_in x + b_in + r * (W_hn h
    + b_hn)), h' = (1 - z) * n + z * h).

    input (T, B, I) ((B, T, I) with batch_first, or unbatched (T, I)), hx (L*D, B, H) ->
    (output (T, B, D*H), h_n (L*D, B, H)).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, stateful=False, dtype=np.float32):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, stateful=stateful, dtype=dtype)


class RNNCellBase(Module):
    def __init__(self, input_size, hidden_size, bias, gates, dtype=np.float32):
        super().__init__()
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.weight_ih = Parameter(np.empty((gates * hidden_size, input_size), dtype))
        self.weight_hh = Parameter(np.empty((gates * hidden_size, hidden_size), dtype))
        if bias:
            self.bias_ih = Parameter(np.empty(gates * hidden_size, dtype))
            self.bias_hh = Parameter(np.empty(gates * hidden_size, dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -k, k)

    def _prepare(self, input, states, names):
        _check_input(input, self.input_size, self.weight_ih.dtype, 2)
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        out = []
        for name, s in zip(names, states, strict=True):
            if s is None:
                out.append(None)
                continue
            _check_state(name, s, expected, input.dtype, 0 if batched else None)
            out.append(s if batched else s.unsqueeze(0))
        return x, out, batched

    def _args(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s


class RNNCell(RNNCellBase):
    """One plain RNN step: input (B, I) or (I,), hx (B, H) or None -> h' (B, H)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh",
                 dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, (hx,), ("hx",))
        fn = _rnn.rnn_tanh_cell if self.nonlinearity == "tanh" else _rnn.rnn_relu_cell
        out = fn(x, h, *self._args())
        return out if batched else out.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step: input (B, I) or (I,), hx = (h, c) each (B, H) or None -> (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__(input_size, hidden_size, bias, 4, dtype)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"hx: LSTMCell expects a tuple (h, c), got {type(hx).__name__}")
        states = hx if hx is not None else (None, None)
        x, (h, c), batched = self._prepare(input, states, ("hx[0]", "hx[1]"))
        h1, c1 = _rnn.lstm_cell(x, (h, c), *self._args())
        return (h1, c1) if batched else (h1.squeeze(0), c1.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step: input (B, I) or (I,), hx (B, H) or None -> h' (B, H)."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__(input_size, hidden_size, bias, 3, dtype)

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, (hx,), ("hx",))
        out = _rnn.gru_cell(x, h, *self._args())
        return out if batched else out.squeeze(0)
