"""convnet.functional's recurrent layer and cells against torch's functional ones, with
float64 central finite differences through time for every input."""

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from tests.helpers import check_op, torch_or_skip

MODES = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def _torch_functional(torch, mode):
    return {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh,
            "rnn_relu": torch.rnn_relu}[mode]


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_gradcheck_through_time_float64(mode, rng):
    """Every input of a bidirectional layer (sequence, initial states, all eight weight
    arrays) against torch and against float64 central finite differences, over 5 steps."""
    torch = torch_or_skip()
    g = cn.kernels.RNN_GATES[mode]
    t_len, b, i, h = 5, 2, 3, 4
    lstm = mode == "lstm"
    arrays = [rng.standard_normal((t_len, b, i)), rng.standard_normal((2, b, h))]
    if lstm:
        arrays.append(rng.standard_normal((2, b, h)))
    for _ in range(2):
        arrays += [rng.standard_normal((g * h, i)) * 0.5, rng.standard_normal((g * h, h)) * 0.5,
                   rng.standard_normal(g * h) * 0.5, rng.standard_normal(g * h) * 0.5]
    if mode == "rnn_relu":
        arrays[0] = arrays[0] + 0.3  # keep pre-activations away from the kink at 0
    n_state = 2 if lstm else 1

    def ours(x, *rest):
        states, w = rest[:n_state], rest[n_state:]
        out, h_n, c_n = F.recurrent_layer(x, [tuple(w[:4]), tuple(w[4:])], mode, *states)
        parts = [out.reshape(-1), h_n.reshape(-1)] + ([c_n.reshape(-1)] if lstm else [])
        return F.cat(parts)

    def theirs(x, *rest):
        states, w = rest[:n_state], list(rest[n_state:])
        hx = tuple(states) if lstm else states[0]
        res = _torch_functional(torch, mode)(x, hx, w, True, 1, 0.0, False, True, False)
        return torch.cat([r.reshape(-1) for r in res])

    check_op(ours, theirs, arrays, np.float64, rng=rng)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bias", [True, False])
def test_cell_functions_match_torch_and_finite_differences(mode, bias, dtype, rng):
    torch = torch_or_skip()
    g = cn.kernels.RNN_GATES[mode]
    b, i, h = 3, 4, 5
    arrays = [rng.standard_normal((b, i)), rng.standard_normal((b, h))]
    if mode == "lstm":
        arrays.append(rng.standard_normal((b, h)))
    arrays += [rng.standard_normal((g * h, i)) * 0.5, rng.standard_normal((g * h, h)) * 0.5]
    if bias:
        arrays += [rng.standard_normal(g * h) * 0.5, rng.standard_normal(g * h) * 0.5]
    if mode == "rnn_relu":
        arrays[1] = np.abs(arrays[1]) + 0.5  # away from the kink
    ours_fn = {"lstm": F.lstm_cell, "gru": F.gru_cell, "rnn_tanh": F.rnn_tanh_cell,
               "rnn_relu": F.rnn_relu_cell}[mode]
    theirs_fn = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn_tanh": torch.rnn_tanh_cell,
                 "rnn_relu": torch.rnn_relu_cell}[mode]

    def ours(x, *rest):
        if mode == "lstm":
            h1, c1 = ours_fn(x, (rest[0], rest[1]), *rest[2:])
            return F.cat([h1, c1], 1)
        return ours_fn(x, rest[0], *rest[1:])

    def theirs(x, *rest):
        if mode == "lstm":
            return torch.cat(theirs_fn(x, (rest[0], rest[1]), *rest[2:]), 1)
        return theirs_fn(x, rest[0], *rest[1:])

    check_op(ours, theirs, arrays, dtype, rng=rng, scale=4.0)


def test_recurrent_layer_bad_arguments():
    x = cn.zeros(3, 2, 4)
    w = (cn.zeros(16, 4), cn.zeros(16, 4), None, None)
    with pytest.raises(ValueError, match="mode"):
        F.recurrent_layer(x, [w], "lstn")
    with pytest.raises(ValueError, match="input"):
        F.recurrent_layer(cn.zeros(3, 4), [w], "lstm")
    with pytest.raises(ValueError, match="w_ih"):
        F.recurrent_layer(cn.zeros(3, 2, 5), [w], "lstm")
    with pytest.raises(ValueError, match="h0"):
        F.recurrent_layer(x, [w], "lstm", h0=cn.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="biases"):
        F.recurrent_layer(x, [(w[0], w[1], cn.zeros(16), None)], "lstm")
    with pytest.raises(ValueError, match="weights"):
        F.recurrent_layer(x, [w, w, w], "lstm")
