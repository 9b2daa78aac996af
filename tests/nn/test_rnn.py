"""nn.RNN/LSTM/GRU and their cells against torch.nn (weights copied through state dicts):
outputs, final states and every gradient; truncated BPTT; vanishing and exploding gradients;
bad input. (The float64 finite-difference checks through time are in
tests/functional/test_rnn.py.)"""

import math

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from tests.helpers import assert_close, torch_or_skip

KINDS = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]
# (seq, batch, input, hidden, layers, bidirectional, batch_first, initial state)
CONFIGS = [
    (1, 1, 1, 1, 1, False, False, False),
    (5, 3, 4, 6, 2, True, False, True),
    (7, 2, 5, 3, 3, True, True, True),
    (4, 1, 3, 8, 1, False, True, True),
    (6, 4, 2, 5, 2, False, False, False),
    (3, 2, 6, 17, 1, True, False, False),
]


def _make(lib, kind, *args, **kw):
    if kind.startswith("RNN_"):
        return lib.RNN(*args, nonlinearity=kind[4:].lower(), **kw)
    return getattr(lib, kind)(*args, **kw)


def copied_pair(kind, dtype, *args, **kw):
    """A torch module (float64, the oracle) and a convnet one in ``dtype`` with its weights."""
    torch = torch_or_skip()
    torch.manual_seed(0)
    tm = _make(torch.nn, kind, *args, **kw).double()
    cm = _make(cn.nn, kind, *args, **kw).to(dtype=dtype)
    cm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, cm


def _tol_scale(dtype, seq, layers):
    # float32 rounding grows with the depth of the recurrence; float64 stays at 1e-10
    return 1.0 if dtype == np.float64 else 4.0 * max(seq, 1) * layers


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "T{}B{}I{}H{}L{}{}{}{}".format(
    *c[:5], "bi" if c[5] else "", "bf" if c[6] else "", "h0" if c[7] else ""))
def test_layer_matches_torch(kind, config, backend, dtype, rng):
    torch = torch_or_skip()
    seq, batch, inp, hidden, layers, bi, bf, with_state = config
    tm, cm = copied_pair(kind, dtype, inp, hidden, layers, batch_first=bf, bidirectional=bi)
    d = 2 if bi else 1
    x = rng.standard_normal((batch, seq, inp) if bf else (seq, batch, inp))
    h0 = rng.standard_normal((layers * d, batch, hidden))
    c0 = rng.standard_normal((layers * d, batch, hidden))
    lstm = kind == "LSTM"
    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    xc, h0c, c0c = (cn.tensor(a.astype(dtype), requires_grad=True) for a in (x, h0, c0))
    hx_t = ((h0t, c0t) if lstm else h0t) if with_state else None
    hx_c = ((h0c, c0c) if lstm else h0c) if with_state else None
    with cn.kernels.use_backend(backend):
        yc, sc = cm(xc, hx_c)
    yt, st = tm(xt, hx_t)
    states_t = list(st) if lstm else [st]
    states_c = list(sc) if lstm else [sc]
    scale = _tol_scale(dtype, seq, layers)
    assert yc.dtype == dtype and yc.shape == tuple(yt.shape)
    assert_close(yc.numpy(), yt.detach().numpy(), dtype, "output", scale)
    for a, b, name in zip(states_c, states_t, ("h_n", "c_n"), strict=False):
        assert a.shape == tuple(b.shape)
        assert_close(a.numpy(), b.detach().numpy(), dtype, name, scale)
    # a loss that reaches the output and every final state
    dy = rng.standard_normal(yt.shape)
    ds = [rng.standard_normal(s.shape) for s in states_t]
    loss_t = (yt * torch.tensor(dy)).sum() + sum((s * torch.tensor(g)).sum()
                                                 for s, g in zip(states_t, ds, strict=True))
    loss_c = (yc * cn.tensor(dy.astype(dtype))).sum()
    for s, g in zip(states_c, ds, strict=True):
        loss_c = loss_c + (s * cn.tensor(g.astype(dtype))).sum()
    loss_t.backward()
    with cn.kernels.use_backend(backend):
        loss_c.backward()
    assert_close(xc.grad.numpy(), xt.grad.numpy(), dtype, "d input", scale)
    if with_state:
        assert_close(h0c.grad.numpy(), h0t.grad.numpy(), dtype, "d h0", scale)
        if lstm:
            assert_close(c0c.grad.numpy(), c0t.grad.numpy(), dtype, "d c0", scale)
    torch_params = dict(tm.named_parameters())
    names = [n for n, _ in cm.named_parameters()]
    assert names == list(torch_params)
    for name, p in cm.named_parameters():
        assert p.grad is not None, name
        assert_close(p.grad.numpy(), torch_params[name].grad.numpy(), dtype, f"d {name}", scale)


@pytest.mark.parametrize("kind", KINDS)
def test_layer_without_bias_and_unbatched(kind, rng):
    torch = torch_or_skip()
    tm, cm = copied_pair(kind, np.float64, 3, 4, 2, bias=False, bidirectional=True)
    assert "bias_ih_l0" not in cm.state_dict()
    x = rng.standard_normal((6, 3))  # unbatched (seq, feature)
    xt, xc = torch.tensor(x, requires_grad=True), cn.tensor(x, requires_grad=True)
    yt, st = tm(xt)
    yc, sc = cm(xc)
    hn_t, hn_c = (st[0], sc[0]) if kind == "LSTM" else (st, sc)
    assert yc.shape == (6, 8) and hn_c.shape == (4, 4)
    assert_close(yc.numpy(), yt.detach().numpy(), np.float64, "output")
    assert_close(hn_c.numpy(), hn_t.detach().numpy(), np.float64, "h_n")
    (yt.sum() + hn_t.sum()).backward()
    (yc.sum() + hn_c.sum()).backward()
    assert_close(xc.grad.numpy(), xt.grad.numpy(), np.float64, "d input")
    for name, p in cm.named_parameters():
        assert_close(p.grad.numpy(), dict(tm.named_parameters())[name].grad.numpy(),
                     np.float64, name)


CELLS = [("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", {}),
         ("RNNCell", {"nonlinearity": "relu"})]


@pytest.mark.parametrize("cell,kw", CELLS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_cells_match_torch(cell, kw, bias, with_state, backend, dtype, rng):
    torch = torch_or_skip()
    torch.manual_seed(1)
    tm = getattr(torch.nn, cell)(5, 7, bias=bias, **kw).double()
    cm = getattr(cn.nn, cell)(5, 7, bias=bias, **kw).to(dtype=dtype)
    cm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x, h, c = rng.standard_normal((4, 5)), rng.standard_normal((4, 7)), rng.standard_normal((4, 7))
    tt = [torch.tensor(a, requires_grad=True) for a in (x, h, c)]
    ct = [cn.tensor(a.astype(dtype), requires_grad=True) for a in (x, h, c)]
    lstm = cell == "LSTMCell"
    hx_t = ((tt[1], tt[2]) if lstm else tt[1]) if with_state else None
    hx_c = ((ct[1], ct[2]) if lstm else ct[1]) if with_state else None
    with cn.kernels.use_backend(backend):
        out_c = cm(ct[0], hx_c)
    out_t = tm(tt[0], hx_t)
    outs_c = list(out_c) if lstm else [out_c]
    outs_t = list(out_t) if lstm else [out_t]
    loss_t, loss_c = 0, 0
    for k, (a, b) in enumerate(zip(outs_c, outs_t, strict=True)):
        assert_close(a.numpy(), b.detach().numpy(), dtype, f"output {k}")
        g = rng.standard_normal(a.shape)
        loss_t = loss_t + (b * torch.tensor(g)).sum()
        loss_c = loss_c + (a * cn.tensor(g.astype(dtype))).sum()
    loss_t.backward()
    with cn.kernels.use_backend(backend):
        loss_c.backward()
    n_inputs = (3 if lstm else 2) if with_state else 1
    for k in range(n_inputs):
        assert_close(ct[k].grad.numpy(), tt[k].grad.numpy(), dtype, f"d input {k}")
    for name, p in cm.named_parameters():
        assert_close(p.grad.numpy(), dict(tm.named_parameters())[name].grad.numpy(), dtype,
                     f"d {name}")


def test_cells_unbatched(rng):
    torch = torch_or_skip()
    for cell in ("LSTMCell", "GRUCell", "RNNCell"):
        tm = getattr(torch.nn, cell)(3, 4).double()
        cm = getattr(cn.nn, cell)(3, 4).double()
        cm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
        x = rng.standard_normal(3)
        out_t, out_c = tm(torch.tensor(x)), cm(cn.tensor(x))
        if cell == "LSTMCell":
            out_t, out_c = out_t[1], out_c[1]
        assert out_c.shape == (4,)
        assert_close(out_c.numpy(), out_t.detach().numpy(), np.float64, cell)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dropout_between_layers(kind, rng):
    torch_or_skip()
    cn.manual_seed(0)
    tm, cm = copied_pair(kind, np.float64, 3, 5, 3, dropout=0.5)
    x = cn.tensor(rng.standard_normal((6, 2, 3)))
    cm.eval()
    y_eval = cm(x)[0].numpy()
    assert_close(y_eval, tm.eval()(__import__("torch").tensor(x.numpy()))[0].detach().numpy(),
                 np.float64, "eval output (no dropout)")
    cm.train()
    y1, y2 = cm(x)[0].numpy(), cm(x)[0].numpy()
    assert not np.allclose(y1, y_eval) and not np.allclose(y1, y2)
    # a one-layer network has no layer to drop between: training changes nothing
    one = _make(cn.nn, kind, 3, 5, 1, dropout=0.5).double().train()
    assert np.array_equal(one(x)[0].numpy(), one.eval()(x)[0].numpy())


def test_state_dict_interchangeable_and_init():
    torch = torch_or_skip()
    for kind in KINDS:
        tm = _make(torch.nn, kind, 7, 9, 2, bidirectional=True)
        cm = _make(cn.nn, kind, 7, 9, 2, bidirectional=True)
        ours, theirs = cm.state_dict(), tm.state_dict()
        assert list(ours) == list(theirs)
        for k in ours:
            assert ours[k].shape == tuple(theirs[k].shape), k
        # U(-1/sqrt(hidden), 1/sqrt(hidden)) as PyTorch: bounded, and spread over the range
        values = np.abs(np.concatenate([v.numpy().ravel() for v in ours.values()]))
        bound = 1 / math.sqrt(9)
        assert values.max() <= bound and values.max() > 0.95 * bound
        assert values.mean() == pytest.approx(bound / 2, rel=0.1)
        tm.load_state_dict({k: torch.tensor(v) for k, v in ours.items()})  # ours -> torch
        x = np.random.default_rng(0).standard_normal((4, 3, 7)).astype(np.float32)
        yc = cm(cn.tensor(x))[0].numpy()
        yt = tm(torch.tensor(x))[0].detach().numpy()
        assert_close(yc, yt, np.float32, kind, scale=10)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN_TANH"])
def test_truncated_bptt_matches_manually_detached_torch(kind, rng):
    """Gradients summed over consecutive chunks with the state detached between them equal
    torch's for the same manual detaching, with detach_state + tbptt_chunks and with a
    stateful layer; and they differ from full BPTT (the cut is real)."""
    torch = torch_or_skip()
    tm, cm = copied_pair(kind, np.float64, 3, 4, 2, batch_first=True)
    stateful = _make(cn.nn, kind, 3, 4, 2, batch_first=True, stateful=True).double()
    stateful.load_state_dict(cm.state_dict())
    x = rng.standard_normal((2, 12, 3))
    target = rng.standard_normal((2, 12, 4))
    lstm = kind == "LSTM"

    state = None
    for xc, yc in cn.nn.utils.tbptt_chunks(cn.tensor(x), cn.tensor(target), k=5, dim=1):
        out, state = cm(xc, state)
        F.mse_loss(out, yc).backward()
        state = cn.nn.utils.detach_state(state)
    for xc, yc in cn.nn.utils.tbptt_chunks(cn.tensor(x), cn.tensor(target), k=5, dim=1):
        out, _ = stateful(xc)
        F.mse_loss(out, yc).backward()

    state = None
    for start in range(0, 12, 5):
        xt = torch.tensor(x[:, start:start + 5])
        out, state = tm(xt, state)
        torch.nn.functional.mse_loss(out, torch.tensor(target[:, start:start + 5])).backward()
        state = tuple(s.detach() for s in state) if lstm else state.detach()
    full = _make(cn.nn, kind, 3, 4, 2, batch_first=True).double()
    full.load_state_dict(cm.state_dict())
    out, _ = full(cn.tensor(x))
    F.mse_loss(out, cn.tensor(target)).backward()
    theirs = dict(tm.named_parameters())
    differs = 0.0
    for (name, p), (_, q), (_, r) in zip(cm.named_parameters(), stateful.named_parameters(),
                                         full.named_parameters(), strict=True):
        assert_close(p.grad.numpy(), theirs[name].grad.numpy(), np.float64, name)
        assert_close(q.grad.numpy(), theirs[name].grad.numpy(), np.float64, f"stateful {name}")
        differs = max(differs, float(np.abs(r.grad.numpy() - p.grad.numpy()).max()))
    assert differs > 1e-3
    stateful.reset_state()
    assert stateful._state is None


def test_stateful_carries_the_state_and_checks_the_batch(rng):
    m = cn.nn.GRU(2, 3, stateful=True).double()
    x = cn.tensor(rng.standard_normal((4, 2, 2)))
    _, h1 = m(x[:2])
    y2, _ = m(x[2:])
    plain = cn.nn.GRU(2, 3).double()
    plain.load_state_dict(m.state_dict())
    y_ref, _ = plain(x[2:], h1)
    assert_close(y2.numpy(), y_ref.numpy(), np.float64, "continued output")
    with pytest.raises(ValueError, match="reset_state"):
        m(cn.tensor(rng.standard_normal((2, 5, 2))))
    m.reset_state()
    assert m(cn.tensor(rng.standard_normal((2, 5, 2))))[0].shape == (2, 5, 3)


def _grad_ratio(model, t_len, rng):
    """|d sum(h_T) / d x_0| over |d sum(h_T) / d x_{T-1}|: how much of the gradient reaches
    the first step from the last output, relative to the last step."""
    x = cn.tensor(rng.standard_normal((t_len, 4, 1)), requires_grad=True)
    out, _ = model(x)
    out[-1].sum().backward()
    g = np.abs(x.grad.numpy())
    return g[0].sum() / g[-1].sum()


def test_plain_rnn_gradient_vanishes_where_lstm_keeps_it(rng):
    """Over 100 steps the plain RNN's gradient to the first input is ~0 while the LSTM's,
    with its forget gate biased open (b_f = 1 in each of b_ih and b_hh, so f ~ sigmoid(2) or
    higher), keeps a usable fraction."""
    cn.manual_seed(0)
    rnn = cn.nn.RNN(1, 32).double()
    lstm = cn.nn.LSTM(1, 32).double()
    for name in ("bias_ih_l0", "bias_hh_l0"):
        b = getattr(lstm, name)
        b.data[32:64] = 1.0
    # a fair, untrained setup: the same default initialisation scale for both, forget bias
    # as recommended for LSTMs (Jozefowicz et al., 2015)
    rnn_ratio = _grad_ratio(rnn, 100, rng)
    lstm_ratio = _grad_ratio(lstm, 100, rng)
    assert rnn_ratio < 1e-12
    assert lstm_ratio > 1e-4
    assert lstm_ratio > 1e8 * rnn_ratio


def test_clip_grad_norm_tames_exploding_rnn_gradients(rng):
    """A ReLU RNN with W_hh = 1.5 I explodes over 40 steps; clip_grad_norm_ scales every
    gradient by the same factor to the requested norm, as torch does."""
    torch = torch_or_skip()
    tm, cm = copied_pair("RNN_RELU", np.float64, 2, 6, 1)
    w = 1.5 * np.eye(6)
    cm.weight_hh_l0.data[...] = w
    with torch.no_grad():
        tm.weight_hh_l0.copy_(torch.tensor(w))
    x = np.abs(rng.standard_normal((40, 3, 2)))
    cm(cn.tensor(x))[0].sum().backward()
    tm(torch.tensor(x))[0].sum().backward()
    before = {n: p.grad.numpy().copy() for n, p in cm.named_parameters()}
    norm = cn.nn.utils.clip_grad_norm_(cm.parameters(), 1.0)
    norm_t = torch.nn.utils.clip_grad_norm_(tm.parameters(), 1.0)
    assert norm > 1e5
    assert norm == pytest.approx(float(norm_t), rel=1e-9)
    after = np.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in cm.parameters()))
    assert after == pytest.approx(1.0, rel=1e-5)
    theirs = dict(tm.named_parameters())
    for n, p in cm.named_parameters():
        assert_close(p.grad.numpy(), theirs[n].grad.numpy(), np.float64, n)
        np.testing.assert_allclose(p.grad.numpy() * norm, before[n], rtol=1e-5)


def test_bad_input_names_the_argument():
    lstm = cn.nn.LSTM(3, 4, 2, batch_first=True)
    x = cn.zeros(2, 5, 3)
    with pytest.raises(ValueError, match="input.*3 features"):
        lstm(cn.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="input"):
        lstm(cn.zeros(2, 5, 3, 1))
    with pytest.raises(TypeError, match="input"):
        lstm(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(TypeError, match="input.*dtype"):
        lstm(cn.zeros(2, 5, 3, dtype=np.float64))
    with pytest.raises(TypeError, match="hx"):
        lstm(x, cn.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="h0.*batch size 3"):
        lstm(x, (cn.zeros(2, 3, 4), cn.zeros(2, 3, 4)))
    with pytest.raises(ValueError, match="c0"):
        lstm(x, (cn.zeros(2, 2, 4), cn.zeros(2, 2, 5)))
    with pytest.raises(ValueError, match="h0"):
        lstm(x, (cn.zeros(1, 2, 4), cn.zeros(2, 2, 4)))
    gru = cn.nn.GRU(3, 4)
    with pytest.raises(ValueError, match="hx"):
        gru(cn.zeros(5, 2, 3), cn.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="hx.*batch"):
        gru(cn.zeros(5, 2, 3), cn.zeros(1, 3, 4))
    with pytest.raises(TypeError, match="hx"):
        gru(cn.zeros(5, 2, 3), (cn.zeros(1, 2, 4),))
    with pytest.raises(ValueError, match="input"):
        gru(cn.zeros(0, 2, 3))
    cell = cn.nn.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"hx\[0\].*batch"):
        cell(cn.zeros(2, 3), (cn.zeros(5, 4), cn.zeros(5, 4)))
    with pytest.raises(ValueError, match="input"):
        cn.nn.GRUCell(3, 4)(cn.zeros(2, 2))
    with pytest.raises(ValueError, match="nonlinearity"):
        cn.nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        cn.nn.LSTM(3, 0)
    with pytest.raises(ValueError, match="dropout"):
        cn.nn.GRU(3, 4, 2, dropout=1.5)
    with pytest.raises(ValueError, match="k"):
        next(cn.nn.utils.tbptt_chunks(x, k=0))


@pytest.mark.parametrize("kind", KINDS)
def test_frozen_weights_or_input_without_grad(kind, rng):
    """Only what needs a gradient gets one: a frozen layer still passes gradients to its
    input, and a layer fed data without grad still trains."""
    torch = torch_or_skip()
    tm, cm = copied_pair(kind, np.float64, 3, 4, 2, bidirectional=True)
    x = rng.standard_normal((5, 2, 3))
    cm.requires_grad_(False)
    xc, xt = cn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    cm(xc)[0].sum().backward()
    tm(xt)[0].sum().backward()
    assert all(p.grad is None for p in cm.parameters())
    assert_close(xc.grad.numpy(), xt.grad.numpy(), np.float64, "d input")
    cm.requires_grad_(True)
    out, _ = cm(cn.tensor(x))
    out.sum().backward()
    theirs = dict(tm.named_parameters())
    for name, p in cm.named_parameters():
        assert_close(p.grad.numpy(), theirs[name].grad.numpy(), np.float64, name)
    with cn.no_grad():
        assert not cm(cn.tensor(x))[0].requires_grad
