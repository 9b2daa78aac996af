"""Recurrent-cell kernels (LSTM, GRU, tanh/ReLU RNN) and the whole-sequence recurrence:
every backend against the float64 reference and against PyTorch's cells."""

import numpy as np
import pytest

import convnet as cn
from convnet.kernels import reference as ref
from tests.helpers import assert_close, torch_or_skip

K = cn.kernels

SHAPES = [(1, 1), (3, 5), (4, 16), (7, 37), (64, 33), (2, 130)]


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("b,h", SHAPES)
def test_lstm_cell_matches_reference(b, h, backend, dtype, rng):
    gates = randn(rng, (b, 4 * h), dtype, 2.0)
    bias = randn(rng, 4 * h, dtype)
    c_prev = randn(rng, (b, h), dtype)
    out_h, out_c, act = K.lstm_cell_forward(gates, c_prev, bias, backend=backend)
    eh, ec, ea = ref.lstm_cell_forward_ref(gates, c_prev, bias)
    assert_close(out_h, eh, dtype, "h")
    assert_close(out_c, ec, dtype, "c")
    assert_close(act, ea, dtype, "act")
    dh, dc = randn(rng, (b, h), dtype), randn(rng, (b, h), dtype)
    got = K.lstm_cell_backward(act, c_prev, out_c, dh, dc, backend=backend)
    want = ref.lstm_cell_backward_ref(act, c_prev, out_c, dh, dc)
    for g, w, name in zip(got, want, ("dgates", "dc_prev", "db"), strict=True):
        assert_close(g, w, dtype, name, scale=4.0)


@pytest.mark.parametrize("b,h", SHAPES)
def test_gru_cell_matches_reference(b, h, backend, dtype, rng):
    gx, gh = randn(rng, (b, 3 * h), dtype, 2.0), randn(rng, (b, 3 * h), dtype, 2.0)
    b_ih, b_hh = randn(rng, 3 * h, dtype), randn(rng, 3 * h, dtype)
    h_prev = randn(rng, (b, h), dtype)
    out, act = K.gru_cell_forward(gx, gh, h_prev, b_ih, b_hh, backend=backend)
    eo, ea = ref.gru_cell_forward_ref(gx, gh, b_ih, b_hh, h_prev)
    assert_close(out, eo, dtype, "h")
    assert_close(act, ea, dtype, "act")
    dh = randn(rng, (b, h), dtype)
    got = K.gru_cell_backward(act, h_prev, dh, backend=backend)
    want = ref.gru_cell_backward_ref(act, h_prev, dh)
    for g, w, name in zip(got, want, ("dgx", "dgh", "dh_prev", "dbx", "dbh"), strict=True):
        assert_close(g, w, dtype, name, scale=4.0)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("b,h", SHAPES)
def test_rnn_cell_matches_reference(b, h, nonlinearity, backend, dtype, rng):
    pre, bias = randn(rng, (b, h), dtype, 2.0), randn(rng, h, dtype)
    out = K.rnn_cell_forward(pre, nonlinearity, bias, backend=backend)
    assert_close(out, ref.rnn_cell_forward_ref(pre, nonlinearity == "relu", bias), dtype, "h")
    dh = randn(rng, (b, h), dtype)
    dpre, db = K.rnn_cell_backward(out, dh, nonlinearity, backend=backend)
    e_dpre, e_db = ref.rnn_cell_backward_ref(out, dh, nonlinearity == "relu")
    assert_close(dpre, e_dpre, dtype, "dpre")
    assert_close(db, e_db, dtype, "db", scale=4.0)


def _torch_cell(torch, kind, x, h, c, w_ih, w_hh, b_ih, b_hh):
    if kind == "lstm":
        return torch.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)
    return {"gru": torch.gru_cell, "rnn_tanh": torch.rnn_tanh_cell,
            "rnn_relu": torch.rnn_relu_cell}[kind](x, h, w_ih, w_hh, b_ih, b_hh)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("b,i,h", [(1, 1, 1), (3, 5, 7), (8, 16, 33)])
def test_cell_kernels_match_torch_cells(kind, b, i, h, backend, rng):
    """The kernels as a cell: projections by GEMM, then the kernel, against torch's cells
    and their autograd (float64)."""
    torch = torch_or_skip()
    g = K.RNN_GATES[kind]
    x = rng.standard_normal((b, i))
    h0, c0 = rng.standard_normal((b, h)), rng.standard_normal((b, h))
    w_ih, w_hh = rng.standard_normal((g * h, i)) * 0.5, rng.standard_normal((g * h, h)) * 0.5
    b_ih, b_hh = rng.standard_normal(g * h), rng.standard_normal(g * h)
    tt = [torch.tensor(a, requires_grad=True) for a in (x, h0, c0, w_ih, w_hh, b_ih, b_hh)]
    out = _torch_cell(torch, kind, *tt)
    out_h = out[0] if kind == "lstm" else out
    dh = rng.standard_normal((b, h))
    gx, gh = x @ w_ih.T, h0 @ w_hh.T
    if kind == "lstm":
        oh, oc, act = K.lstm_cell_forward(gx + gh, c0, b_ih + b_hh, backend=backend)
        assert_close(oc, out[1].detach().numpy(), np.float64, "c")
        out_h.backward(torch.tensor(dh))
        dgates, dc_prev, db = K.lstm_cell_backward(act, c0, oc, dh, backend=backend)
        assert_close(dc_prev, tt[2].grad.numpy(), np.float64, "dc_prev")
        dgx = dgh = dgates
        dbx = dbh = db
        dh_prev = dgh @ w_hh
    elif kind == "gru":
        oh, act = K.gru_cell_forward(gx, gh, h0, b_ih, b_hh, backend=backend)
        out_h.backward(torch.tensor(dh))
        dgx, dgh, direct, dbx, dbh = K.gru_cell_backward(act, h0, dh, backend=backend)
        dh_prev = direct + dgh @ w_hh
    else:
        nl = kind[4:]
        oh = K.rnn_cell_forward(gx + gh, nl, b_ih + b_hh, backend=backend)
        out_h.backward(torch.tensor(dh))
        dgx, dbx = K.rnn_cell_backward(oh, dh, nl, backend=backend)
        dgh, dbh = dgx, dbx
        dh_prev = dgh @ w_hh
    assert_close(oh, out_h.detach().numpy(), np.float64, "h")
    expected = [None if t.grad is None else t.grad.numpy() for t in tt]  # c0: LSTM only
    assert_close(dgx @ w_ih, expected[0], np.float64, "dx")
    assert_close(dh_prev, expected[1], np.float64, "dh_prev")
    assert_close(dgx.T @ x, expected[3], np.float64, "dw_ih")
    assert_close(dgh.T @ h0, expected[4], np.float64, "dw_hh")
    assert_close(dbx, expected[5], np.float64, "db_ih")
    assert_close(dbh, expected[6], np.float64, "db_hh")


def _recurrence_ref(mode, x_proj, w_hh, b_ih, b_hh, h0, c0, reverse):
    """The recurrence written step by step with the float64 reference cells."""
    t_len = x_proj.shape[0]
    h, c, outs = h0, c0, [None] * t_len
    for t in (range(t_len - 1, -1, -1) if reverse else range(t_len)):
        if mode == "lstm":
            h, c, _ = ref.lstm_cell_forward_ref(x_proj[t] + h @ w_hh.T, c, b_ih + b_hh)
        elif mode == "gru":
            h, _ = ref.gru_cell_forward_ref(x_proj[t], h @ w_hh.T, b_ih, b_hh, h)
        else:
            h = ref.rnn_cell_forward_ref(x_proj[t] + h @ w_hh.T, mode == "rnn_relu", b_ih + b_hh)
        outs[t] = h
    return np.stack(outs), h, c


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("t_len,b,h", [(1, 1, 1), (5, 3, 7), (9, 4, 40)])
@pytest.mark.parametrize("reverse", [False, True])
def test_recurrence_matches_step_by_step_reference(mode, t_len, b, h, reverse, backend, dtype,
                                                   rng):
    g = K.RNN_GATES[mode]
    xproj = randn(rng, (t_len, b, g * h), dtype)
    w_hh = randn(rng, (g * h, h), dtype, 0.4)
    b_ih, b_hh = randn(rng, g * h, dtype), randn(rng, g * h, dtype)
    h0, c0 = randn(rng, (b, h), dtype), randn(rng, (b, h), dtype)
    rec = K.rnn_recurrence_forward(mode, xproj.copy(), w_hh, h0, c0 if mode == "lstm" else None,
                                   b_ih, b_hh, reverse, backend=backend)
    outs, h_n, c_n = _recurrence_ref(mode, xproj.astype(np.float64), w_hh, b_ih, b_hh, h0, c0,
                                     reverse)
    scale = 2.0 * t_len
    assert_close(rec.outputs, outs, dtype, "outputs", scale)
    assert_close(rec.h_n, h_n, dtype, "h_n", scale)
    if mode == "lstm":
        assert_close(rec.c_n, c_n, dtype, "c_n", scale)


def test_recurrence_backends_agree(rng):
    """native == numba == reference for the whole forward and backward recurrence."""
    if not cn.backends()["native"]["available"]:
        pytest.skip("native backend unavailable")
    for mode in K.RNN_MODES:
        g = K.RNN_GATES[mode]
        t_len, b, h = 6, 5, 19
        xproj = rng.standard_normal((t_len, b, g * h))
        w_hh = rng.standard_normal((g * h, h)) * 0.3
        b_ih, b_hh = rng.standard_normal(g * h), rng.standard_normal(g * h)
        h0, c0 = rng.standard_normal((b, h)), rng.standard_normal((b, h))
        dout, dhn, dcn = (rng.standard_normal((t_len, b, h)), rng.standard_normal((b, h)),
                          rng.standard_normal((b, h)))
        results = {}
        for name, impl in (("native", "native"), ("numba", "numba"), ("reference", ref)):
            if impl is ref:
                buffers = _reference_run(mode, xproj, w_hh, b_ih, b_hh, h0, c0, dout, dhn, dcn)
            else:
                rec = K.rnn_recurrence_forward(mode, xproj.copy(), w_hh, h0,
                                               c0 if mode == "lstm" else None, b_ih, b_hh,
                                               True, backend=impl)
                back = K.rnn_recurrence_backward(rec, w_hh, dout, dhn,
                                                 dcn if mode == "lstm" else None, backend=impl)
                buffers = [rec.hbuf] + [a for a in back if a is not None]
            results[name] = buffers
        for other in ("numba", "reference"):
            for a, e in zip(results[other], results["native"], strict=True):
                assert_close(a, e, np.float64, f"{mode} {other} vs native")


def _reference_run(mode, xproj, w_hh, b_ih, b_hh, h0, c0, dout, dhn, dcn):
    """The same run through reference.rnn_recurrence_* with hand-made buffers."""
    t_len, b, _ = xproj.shape
    h = h0.shape[1]
    g = K.RNN_GATES[mode]
    m = K.RNN_MODES.index(mode)
    hbuf = np.empty((t_len + 1, b, h))
    hbuf[t_len] = h0
    cbuf = act = None
    if mode == "lstm":
        cbuf = np.empty_like(hbuf)
        cbuf[t_len] = c0
    if mode == "gru":
        act = np.empty((t_len, b, 4 * h))
    xp = xproj.copy()
    ref.rnn_recurrence_forward(m, xp, w_hh, b_ih, b_hh, hbuf, cbuf, act, True)
    if mode == "lstm":
        act = xp
    dH = np.zeros((t_len + 1, b, h))
    dH[:t_len] = dout
    dH[0] += dhn
    dc = dcn.copy() if mode == "lstm" else None
    dgx = np.empty((t_len, b, g * h))
    dgh = np.empty_like(dgx) if mode == "gru" else dgx
    dbx = np.empty(g * h)
    dbh = np.empty(g * h) if mode == "gru" else dbx
    ref.rnn_recurrence_backward(m, w_hh, hbuf, cbuf, act, dH, dc, dgx, dgh, dbx, dbh, True)
    out = [hbuf, dgx, dgh, dH[t_len]]
    if mode == "lstm":
        out.append(dc)
    return out + [dbx, dbh]


def test_cell_kernels_bad_input(rng):
    c = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="gates"):
        K.lstm_cell_forward(np.zeros((3, 15), np.float32), c)
    with pytest.raises(TypeError, match="gates"):
        K.lstm_cell_forward(np.zeros((3, 16), np.float64), c)
    with pytest.raises(ValueError, match="bias"):
        K.lstm_cell_forward(np.zeros((3, 16), np.float32), c, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="c_prev"):
        K.lstm_cell_forward(np.zeros((3, 16), np.float32), np.zeros(12, np.float32))
    with pytest.raises(ValueError, match="gh"):
        K.gru_cell_forward(np.zeros((3, 12), np.float32), np.zeros((2, 12), np.float32), c)
    with pytest.raises(ValueError, match="nonlinearity"):
        K.rnn_cell_forward(c, "sigmoid")
    with pytest.raises(ValueError, match="dh"):
        K.rnn_cell_backward(c, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="mode"):
        K.rnn_recurrence_forward("lstn", np.zeros((2, 3, 16)), np.zeros((16, 4)),
                                 np.zeros((3, 4)))
    with pytest.raises(ValueError, match="c0"):
        K.rnn_recurrence_forward("lstm", np.zeros((2, 3, 16)), np.zeros((16, 4)),
                                 np.zeros((3, 4)))
    with pytest.raises(ValueError, match="xproj"):
        K.rnn_recurrence_forward("gru", np.zeros((2, 3, 16)), np.zeros((12, 4)),
                                 np.zeros((3, 4)))
    with pytest.raises(ValueError, match="w_hh"):
        K.rnn_recurrence_forward("gru", np.zeros((2, 3, 12)), np.zeros((12, 5)),
                                 np.zeros((3, 4)))


def test_recurrence_same_result_on_one_and_two_threads(rng):
    """The threads split the hidden columns (cells) and the GEMM's column panels, so no two
    threads write one value: one thread and two give the same numbers."""
    if not cn.backends()["native"]["available"]:
        pytest.skip("native backend unavailable")
    before = cn.get_num_threads()
    t_len, b, h = 7, 64, 130
    try:
        for mode in K.RNN_MODES:
            g = K.RNN_GATES[mode]
            xproj = randn(rng, (t_len, b, g * h), np.float32)
            w_hh = randn(rng, (g * h, h), np.float32, 0.1)
            h0, c0 = randn(rng, (b, h), np.float32), randn(rng, (b, h), np.float32)
            dout = randn(rng, (t_len, b, h), np.float32)
            results = []
            for threads in (1, 2):
                cn.set_num_threads(threads)
                rec = K.rnn_recurrence_forward(mode, xproj.copy(), w_hh, h0,
                                               c0 if mode == "lstm" else None, backend="native")
                back = K.rnn_recurrence_backward(rec, w_hh, dout, backend="native")
                results.append([rec.hbuf] + [a for a in back if a is not None])
            for a, e in zip(*results, strict=True):
                assert_close(a, e, np.float32, f"{mode}: 2 threads vs 1")
    finally:
        cn.set_num_threads(before)
