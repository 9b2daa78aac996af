"""bfloat16 and float16 tensors with PyTorch's semantics: conversions, modules, type
promotion, autograd (gradients in the tensor's dtype), and the ops of a network run on
16-bit tensors, each against PyTorch or a float64 reference of the rounded inputs.

Bounds: an op that computes in float32 and rounds its result once to a 16-bit type is
within half an ulp of the exact result of its (rounded) inputs, 2**-8 relative for
bfloat16 (8 significant bits) and 2**-11 for float16 (11), plus the float32 error of
its sums (a few 2**-24 times the sum of the magnitudes of the terms)."""

import ml_dtypes
import numpy as np
import pytest

import convnet as cn
import convnet.functional as F

RNG = np.random.default_rng(7)
HALF_ULP = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
NP16 = {"bfloat16": np.dtype(ml_dtypes.bfloat16), "float16": np.dtype(np.float16)}


def _rounded(a, name):
    """float64 values of ``a`` rounded to the 16-bit type ``name``."""
    return np.asarray(a, np.float32).astype(NP16[name]).astype(np.float64)


def _f64(t):
    return t.float().numpy().astype(np.float64)


def _within_one_rounding(got, exact, name, terms=None):
    """|got - exact| <= half an ulp of exact (+ float32 sums' error from ``terms``)."""
    bound = HALF_ULP[name] * np.abs(exact)
    if terms is not None:
        bound = bound + 8 * 2.0**-24 * terms
    # the smallest normal numbers: one ulp of the subnormal range
    bound = bound + 1e-37
    err = np.abs(got - exact)
    assert np.all(err <= bound), f"max excess {np.max(err - bound)}"


@pytest.fixture(params=["bfloat16", "float16"])
def dt(request):
    return request.param


# --------------------------------------------------------------------------- conversions


def test_conversions_round_like_torch(torch, dt):
    x = (RNG.standard_normal(1000) * 10.0 ** RNG.integers(-6, 6, 1000)).astype(np.float32)
    ours = {"to": cn.tensor(x).to(getattr(cn, dt)),
            "method": getattr(cn.tensor(x), "half" if dt == "float16" else "bfloat16")(),
            "kw": cn.tensor(x).to(dtype=getattr(cn, dt))}
    ref = torch.tensor(x).to(getattr(torch, dt)).view(torch.int16).numpy()
    for how, t in ours.items():
        assert t.dtype == getattr(cn, dt), how
        np.testing.assert_array_equal(t.numpy().view(np.int16), ref, err_msg=how)
    back = ours["to"].float()
    assert back.dtype == cn.float32
    np.testing.assert_array_equal(back.numpy(), torch.tensor(x).to(getattr(torch, dt))
                                  .float().numpy())
    assert cn.half is cn.float16
    assert ours["to"].type() == ("torch.HalfTensor" if dt == "float16"
                                 else "torch.BFloat16Tensor")


def test_module_to_dtype_like_torch(torch):
    model = cn.nn.Sequential(cn.nn.Conv2d(1, 2, 3), cn.nn.BatchNorm2d(2))
    assert model.to(cn.bfloat16) is model
    for name, t in model.state_dict().items():
        want = cn.int64 if name.endswith("num_batches_tracked") else cn.bfloat16
        assert t.dtype == want, name
    model.half()
    assert model[0].weight.dtype == cn.float16
    model.float()
    assert model[0].weight.dtype == cn.float32
    model.bfloat16()
    assert model[1].running_var.dtype == cn.bfloat16
    assert model[1].num_batches_tracked.dtype == cn.int64
    with pytest.raises(TypeError, match="floating point"):
        model.to(cn.int32)
    with pytest.raises(TypeError, match="floating point"):
        torch.nn.Linear(2, 2).to(torch.int32)


# --------------------------------------------------------------------------- promotion


def test_type_promotion_matches_torch(torch):
    cases = {
        "bf16+f32": (("bfloat16", (3,)), ("float32", (3,))),
        "bf16+f16": (("bfloat16", (3,)), ("float16", (3,))),
        "f16+f32_0d": (("float16", (3,)), ("float32", ())),
        "bf16_0d+f32": (("bfloat16", ()), ("float32", (3,))),
        "bf16_0d+f32_0d": (("bfloat16", ()), ("float32", ())),
        "int64+bf16_0d": (("int64", (3,)), ("bfloat16", ())),
        "int64+f16": (("int64", (3,)), ("float16", (3,))),
        "f64_0d+bf16": (("float64", ()), ("bfloat16", (3,))),
    }
    for name, ((da, sa), (db, sb)) in cases.items():
        a, b = np.ones(sa), np.full(sb, 2.0)
        for op in ("__add__", "__mul__", "__sub__", "__truediv__"):
            ours = getattr(cn.tensor(a).to(getattr(cn, da)), op)(cn.tensor(b).to(getattr(cn, db)))
            ref = getattr(torch.tensor(a).to(getattr(torch, da)), op)(
                torch.tensor(b).to(getattr(torch, db)))
            assert str(ours.dtype) == str(ref.dtype).replace("torch.", ""), (name, op)
    for dt in ("bfloat16", "float16"):  # Python numbers keep the tensor's dtype
        t = cn.ones(3, dtype=getattr(cn, dt))
        for r in (t + 1, t * 2.5, 1.5 - t, t / 3, t**2):
            assert r.dtype == getattr(cn, dt)


def test_gradients_have_their_tensors_dtype(torch, dt):
    x = cn.tensor(RNG.standard_normal(5).astype(np.float32)).to(getattr(cn, dt))
    x.requires_grad_()
    w = cn.tensor(RNG.standard_normal(5).astype(np.float32), requires_grad=True)
    y = x * w  # float32
    assert y.dtype == cn.float32
    (y.sum() + (x * 2.0).sum()).backward()
    assert x.grad.dtype == getattr(cn, dt) and w.grad.dtype == cn.float32
    np.testing.assert_array_equal(x.grad.numpy(), (w.numpy() + 2).astype(NP16[dt]))
    np.testing.assert_array_equal(w.grad.numpy(), x.float().numpy())
    tx = torch.tensor(x.float().numpy()).to(getattr(torch, dt)).requires_grad_()
    tw = torch.tensor(w.numpy(), requires_grad=True)
    ((tx * tw).sum() + (tx * 2.0).sum()).backward()
    assert str(tx.grad.dtype).endswith(dt) and tw.grad.dtype == torch.float32


# --------------------------------------------------------------------------- ops


def test_linear_and_its_gradients_within_one_rounding(dt):
    x = _rounded(RNG.standard_normal((9, 13)), dt)
    w = _rounded(RNG.standard_normal((5, 13)), dt)
    b = _rounded(RNG.standard_normal(5), dt)
    g = _rounded(RNG.standard_normal((9, 5)), dt)
    tx, tw, tb = (cn.tensor(a.astype(np.float32)).to(getattr(cn, dt)).requires_grad_()
                  for a in (x, w, b))
    y = F.linear(tx, tw, tb)
    assert y.dtype == getattr(cn, dt)
    y.backward(cn.tensor(g.astype(np.float32)).to(getattr(cn, dt)))
    # the product is rounded, then the bias add: two roundings
    _within_one_rounding(_f64(y), x @ w.T + b, dt,
                         2.0**24 * HALF_ULP[dt] / 8 * np.abs(x @ w.T)
                         + np.abs(x) @ np.abs(w.T) + np.abs(b))
    for t, exact, terms in ((tx, g @ w, np.abs(g) @ np.abs(w)),
                            (tw, g.T @ x, np.abs(g.T) @ np.abs(x)),
                            (tb, g.sum(0), np.abs(g).sum(0))):
        assert t.grad.dtype == getattr(cn, dt)
        _within_one_rounding(_f64(t.grad), exact, dt, terms)


def test_conv2d_within_one_rounding(torch, dt):
    x = _rounded(RNG.standard_normal((2, 3, 7, 6)), dt)
    w = _rounded(RNG.standard_normal((4, 3, 3, 2)), dt)
    tx = cn.tensor(x.astype(np.float32)).to(getattr(cn, dt)).requires_grad_()
    tw = cn.tensor(w.astype(np.float32)).to(getattr(cn, dt)).requires_grad_()
    y = F.conv2d(tx, tw, padding=1, stride=(2, 1))
    assert y.dtype == getattr(cn, dt)
    F64 = torch.nn.functional
    exact = F64.conv2d(torch.tensor(x), torch.tensor(w), padding=1, stride=(2, 1)).numpy()
    terms = F64.conv2d(torch.tensor(np.abs(x)), torch.tensor(np.abs(w)), padding=1,
                       stride=(2, 1)).numpy()
    _within_one_rounding(_f64(y), exact, dt, terms)
    y.float().sum().backward()
    assert tx.grad.dtype == getattr(cn, dt) and tw.grad.dtype == getattr(cn, dt)
    rx = torch.tensor(x, requires_grad=True)
    rw = torch.tensor(w, requires_grad=True)
    F64.conv2d(rx, rw, padding=1, stride=(2, 1)).sum().backward()
    _within_one_rounding(_f64(tx.grad), rx.grad.numpy(), dt, np.abs(rx.grad.numpy()) * 0 +
                         np.abs(w).sum() * 2)
    _within_one_rounding(_f64(tw.grad), rw.grad.numpy(), dt, np.abs(x).sum() * np.ones(w.shape))


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "elu", "gelu", "softmax",
                                  "log_softmax", "max_pool2d", "avg_pool2d"])
def test_elementwise_and_pooling_ops_within_one_rounding(torch, dt, name):
    x = _rounded(RNG.standard_normal((2, 3, 6, 6)), dt)
    ops = {"relu": lambda F_, t: F_.relu(t), "sigmoid": lambda F_, t: F_.sigmoid(t) if F_ is F
           else torch.sigmoid(t), "tanh": lambda F_, t: F_.tanh(t) if F_ is F
           else torch.tanh(t), "elu": lambda F_, t: F_.elu(t), "gelu": lambda F_, t: F_.gelu(t),
           "softmax": lambda F_, t: F_.softmax(t, 1),
           "log_softmax": lambda F_, t: F_.log_softmax(t, 1),
           "max_pool2d": lambda F_, t: F_.max_pool2d(t, 2),
           "avg_pool2d": lambda F_, t: F_.avg_pool2d(t, 3, 2)}
    y = ops[name](F, cn.tensor(x.astype(np.float32)).to(getattr(cn, dt)))
    assert y.dtype == getattr(cn, dt)
    exact = ops[name](torch.nn.functional, torch.tensor(x)).numpy()
    # float32 evaluation of exp/tanh/erf: a few float32 ulps before the one rounding
    _within_one_rounding(_f64(y), exact, dt, 4 * np.abs(exact))
    ty = ops[name](torch.nn.functional, torch.tensor(x.astype(np.float32)).to(getattr(torch, dt)))
    assert str(ty.dtype).endswith(dt)


def test_batch_norm_training_statistics_in_float32(torch, dt):
    x = _rounded(RNG.standard_normal((8, 3, 5, 5)) * 3 + 100, dt)  # a large mean
    bn = cn.nn.BatchNorm2d(3).to(getattr(cn, dt))
    y = bn(cn.tensor(x.astype(np.float32)).to(getattr(cn, dt)))
    ref = torch.nn.BatchNorm2d(3).double()
    exact = ref(torch.tensor(x)).detach().numpy()
    assert y.dtype == getattr(cn, dt)
    # normalised values are O(1): one rounding of the output, and the float32 statistics
    # of the rounded inputs (the variance of values near 100 in float32: ~2**-24 * 100^2)
    _within_one_rounding(_f64(y), exact, dt, np.full(exact.shape, 64.0))
    np.testing.assert_allclose(_f64(bn.running_mean), ref.running_mean.numpy(),
                               rtol=2 * HALF_ULP[dt])
    np.testing.assert_allclose(_f64(bn.running_var), ref.running_var.numpy(),
                               rtol=4 * HALF_ULP[dt] + 1e-4)


def test_reductions_accumulate_in_float32(torch, dt):
    x = np.full(20000, 0.1, np.float32)
    ours = cn.tensor(x).to(getattr(cn, dt))
    ref = torch.tensor(x).to(getattr(torch, dt))
    for op in ("sum", "mean"):
        got, want = getattr(ours, op)(), getattr(ref, op)()
        assert got.dtype == getattr(cn, dt)
        assert got.item() == want.item(), op
    assert abs(ours.sum().item() - 2000.0) <= 2000 * 2 * HALF_ULP[dt]
    assert abs(ours.var().item()) <= 1e-6


def test_losses_and_training_step_follow_torch(torch, dt):
    logits = _rounded(RNG.standard_normal((16, 10)) * 2, dt)
    labels = RNG.integers(0, 10, 16)
    cl = cn.tensor(logits.astype(np.float32)).to(getattr(cn, dt)).requires_grad_()
    tl = torch.tensor(logits.astype(np.float32)).to(getattr(torch, dt)).requires_grad_()
    for fn in ("cross_entropy", "mse_loss"):
        target = cn.tensor(labels) if fn == "cross_entropy" else cl.detach() * 0.5
        ttarget = torch.tensor(labels) if fn == "cross_entropy" else tl.detach() * 0.5
        ours = getattr(F, fn)(cl, target)
        ref = getattr(torch.nn.functional, fn)(tl, ttarget)
        assert str(ours.dtype) == str(ref.dtype).replace("torch.", "")
        # the loss is a few roundings (log-softmax, picking, the mean) from the exact value
        assert abs(ours.item() - ref.item()) <= 4 * HALF_ULP[dt] * abs(ref.item()) + 1e-3
        ours.backward()
        ref.backward()
        assert cl.grad.dtype == getattr(cn, dt)
        np.testing.assert_allclose(_f64(cl.grad), tl.grad.double().numpy(),
                                   atol=8 * HALF_ULP[dt] * np.abs(tl.grad.double().numpy())
                                   .max())
        cl.grad = None
        tl.grad = None


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_optimizers_on_16bit_parameters(torch, dt, opt):
    """A 16-bit parameter steps in float32 and is rounded once per step: the oracle is
    PyTorch's optimizer in float64 with the parameter rounded to 16 bits after each step
    (the state kept exact). PyTorch's own 16-bit step rounds its state as well, and its
    float16 Adam can overflow where (1 - beta2) g^2 and eps underflow."""
    p0 = _rounded(RNG.standard_normal(50), dt)
    grads = [_rounded(RNG.standard_normal(50), dt) for _ in range(3)]
    kw = {"lr": 0.01, "momentum": 0.9} if opt == "SGD" else {"lr": 0.01}
    p = cn.nn.Parameter(cn.tensor(p0.astype(np.float32)).to(getattr(cn, dt)))
    ref = torch.nn.Parameter(torch.tensor(p0))
    o, to = getattr(cn.optim, opt)([p], **kw), getattr(torch.optim, opt)([ref], **kw)
    for g in grads:
        p.grad = cn.tensor(g.astype(np.float32)).to(getattr(cn, dt))
        ref.grad = torch.tensor(g)
        o.step()
        to.step()
        with torch.no_grad():
            ref.copy_(torch.tensor(_rounded(ref.numpy(), dt)))
        assert p.dtype == getattr(cn, dt)
        want = ref.detach().numpy()
        # float32 against float64 arithmetic may round a value near a tie the other way
        assert np.all(np.abs(_f64(p) - want) <= 2 * HALF_ULP[dt] * np.abs(want) + 1e-7)
    assert o.state[id(p)]["exp_avg" if opt == "Adam" else "momentum_buffer"].dtype == \
        np.float32


def test_lstm_on_16bit_tensors(torch, dt):
    lstm = cn.nn.LSTM(4, 3, batch_first=True)
    ref = torch.nn.LSTM(4, 3, batch_first=True)
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in lstm.state_dict().items()})
    x = RNG.standard_normal((2, 5, 4)).astype(np.float32)
    lstm.to(getattr(cn, dt))
    out, (h, c) = lstm(cn.tensor(x).to(getattr(cn, dt)))
    assert out.dtype == h.dtype == c.dtype == getattr(cn, dt)
    want, _ = ref(torch.tensor(x))
    # weights and inputs rounded, then 5 steps of float32 cells rounded at each step
    np.testing.assert_allclose(_f64(out), want.detach().double().numpy(),
                               atol=40 * HALF_ULP[dt])
    out.float().sum().backward()
    assert all(p.grad.dtype == getattr(cn, dt) for p in lstm.parameters())


def test_save_and_load_keep_16bit(tmp_path, dt):
    model = cn.nn.Linear(3, 2).to(getattr(cn, dt))
    path = str(tmp_path / "m.safetensors")
    cn.save(model.state_dict(), path)
    state = cn.load(path)
    assert state["weight"].dtype == getattr(cn, dt)
    np.testing.assert_array_equal(np.asarray(state["weight"]).view(np.int16),
                                  model.weight.numpy().view(np.int16))


def test_numbers_and_scalar_tensors_are_not_rounded_first(torch):
    """PyTorch computes a 16-bit tensor with a number (or a 0-d float32 tensor) in float32
    and rounds the result once: 1e-3 * 65536 is 65.56 in float16, not 1e-3 * inf."""
    x = np.array([1e-3, 2.0, -3.0], np.float32)
    for dt in ("float16", "bfloat16"):
        ours = cn.tensor(x).to(getattr(cn, dt))
        ref = torch.tensor(x).to(getattr(torch, dt))
        pairs = [(ours * 65536.0, ref * 65536.0), (65536.0 * ours, 65536.0 * ref),
                 (ours * 1.001, ref * 1.001), (ours / 3, ref / 3), (1 - ours, 1 - ref),
                 (ours * cn.tensor(65536.0), ref * torch.tensor(65536.0))]
        for i, (a, b) in enumerate(pairs):
            assert a.dtype == getattr(cn, dt), (dt, i)
            with np.errstate(over="ignore"):
                np.testing.assert_array_equal(a.float().numpy(), b.float().numpy(),
                                              err_msg=f"{dt} case {i}")
