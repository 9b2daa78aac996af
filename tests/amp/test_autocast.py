"""autocast against torch.autocast on the CPU: the dtype each op gives, the values within
what 16-bit rounding allows, gradients reaching float32 weights, nesting, the cache."""

import warnings

import ml_dtypes
import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from convnet.amp import autocast

RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
W4 = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
X2 = RNG.standard_normal((5, 7)).astype(np.float32)
W2 = RNG.standard_normal((3, 7)).astype(np.float32)
B2 = RNG.standard_normal(3).astype(np.float32)
LABELS = np.array([0, 2, 1, 1, 0])


def _ops(lib, fn):
    """name -> op(x2, x4) for the library ``lib`` (convnet or torch) and its functional."""
    def t(a):
        return lib.tensor(a)

    return {
        "conv2d": lambda x2, x4: fn.conv2d(x4, t(W4)),
        "linear": lambda x2, x4: fn.linear(x2, t(W2), t(B2)),
        "matmul": lambda x2, x4: x2 @ t(W2).t(),
        "bmm": lambda x2, x4: lib.bmm(x4[:, 0], x4[:, 1]),
        "conv1d": lambda x2, x4: fn.conv1d(x4[:, :, 0], t(W4[:, :, 0])),
        "conv_transpose2d": lambda x2, x4: fn.conv_transpose2d(x4, t(W4).transpose(0, 1)),
        "einsum": lambda x2, x4: lib.einsum("ij,kj->ik", x2, t(W2)),
        "softmax": lambda x2, x4: fn.softmax(x2, 1),
        "log_softmax": lambda x2, x4: fn.log_softmax(x2, 1),
        "cross_entropy": lambda x2, x4: fn.cross_entropy(x2[:, :3], lib.tensor(LABELS)),
        "nll_loss": lambda x2, x4: fn.nll_loss(x2[:, :3], lib.tensor(LABELS)),
        "mse_loss": lambda x2, x4: fn.mse_loss(x2, x2 * 0.5),
        "l1_loss": lambda x2, x4: fn.l1_loss(x2, x2 * 0.5),
        "huber_loss": lambda x2, x4: fn.huber_loss(x2, x2 * 0.5),
        "bce": lambda x2, x4: fn.binary_cross_entropy(fn.sigmoid(x2), fn.sigmoid(x2 * 0.5)),
        "bce_logits": lambda x2, x4: fn.binary_cross_entropy_with_logits(x2, fn.sigmoid(x2)),
        "sum": lambda x2, x4: x2.sum(),
        "mean": lambda x2, x4: x4.mean(),
        "relu": lambda x2, x4: fn.relu(x4),
        "sigmoid": lambda x2, x4: fn.sigmoid(x2),
        "max_pool2d": lambda x2, x4: fn.max_pool2d(x4, 2),
        "avg_pool2d": lambda x2, x4: fn.avg_pool2d(x4, 2),
        "batch_norm": lambda x2, x4: fn.batch_norm(x4, lib.zeros(3), lib.ones(3),
                                                   training=True),
        "layer_norm": lambda x2, x4: fn.layer_norm(x2, (7,)),
        "add_float32": lambda x2, x4: x2 + t(X2),
        "cat": lambda x2, x4: lib.cat([x2, t(X2)]),
    }


def _dtype_name(d) -> str:
    return str(d).replace("torch.", "")


@pytest.mark.parametrize("fast", ["bfloat16", "float16"])
@pytest.mark.parametrize("input_dtype", ["float32", "bfloat16"])
def test_output_dtypes_match_torch_autocast(torch, fast, input_dtype):
    import torch.nn.functional as TF

    ours, ref = _ops(cn, F), _ops(torch, TF)
    cx2 = cn.tensor(X2).to(getattr(cn, input_dtype))
    cx4 = cn.tensor(X4).to(getattr(cn, input_dtype))
    tx2 = torch.tensor(X2).to(getattr(torch, input_dtype))
    tx4 = torch.tensor(X4).to(getattr(torch, input_dtype))
    mismatched = {}
    compared = 0
    for name in ours:
        try:
            with torch.autocast("cpu", dtype=getattr(torch, fast)):
                want = _dtype_name(ref[name](tx2, tx4).dtype)
        except RuntimeError:  # bfloat16 and float32 inputs to cat in a float16 region
            continue
        with autocast("cpu", dtype=getattr(cn, fast)):
            got = _dtype_name(ours[name](cx2, cx4).dtype)
        compared += 1
        if got != want:
            mismatched[name] = (got, want)
    assert mismatched == {}
    assert compared >= len(ours) - 1


def _round(a, dtype):
    return np.asarray(a, np.float32).astype(dtype).astype(np.float64)


def test_linear_values_within_the_16bit_bound(torch):
    """Under autocast, linear is the product of the bfloat16-rounded operands accumulated
    in float32 and rounded once to bfloat16: within half a bfloat16 ulp (2**-8 relative)
    of the float64 product of the rounded inputs, plus float32 accumulation error."""
    bf = ml_dtypes.bfloat16
    x = cn.tensor(X2, requires_grad=True)
    w = cn.tensor(W2, requires_grad=True)
    with autocast("cpu"):
        y = F.linear(x, w)
    assert y.dtype == cn.bfloat16
    exact = _round(X2, bf) @ _round(W2, bf).T
    got = y.float().numpy().astype(np.float64)
    bound = 2.0**-8 * np.abs(exact) + 7 * 2.0**-24 * (np.abs(_round(X2, bf))
                                                      @ np.abs(_round(W2, bf)).T)
    assert np.all(np.abs(got - exact) <= bound + 1e-30)
    with torch.autocast("cpu"):
        ty = torch.nn.functional.linear(torch.tensor(X2), torch.tensor(W2))
    # torch rounds the same float32-accumulated value: one bfloat16 ulp apart at most
    ulp = 2.0 ** (np.floor(np.log2(np.abs(exact) + 1e-30)) - 7)
    assert np.all(np.abs(got - ty.float().numpy()) <= ulp + 1e-30)


def test_gradients_reach_float32_weights_in_float32(torch):
    cn.manual_seed(0)
    ours = cn.nn.Sequential(cn.nn.Conv2d(3, 4, 3), cn.nn.ReLU(), cn.nn.Flatten(),
                            cn.nn.Linear(4 * 4 * 4, 3))
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 4 * 4, 3))
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    labels = np.array([0, 2])
    with autocast("cpu"):
        out = ours(cn.tensor(X4))
        loss = F.cross_entropy(out, cn.tensor(labels))
    assert out.dtype == cn.bfloat16 and loss.dtype == cn.float32
    loss.backward()
    with torch.autocast("cpu"):
        tloss = torch.nn.functional.cross_entropy(ref(torch.tensor(X4)), torch.tensor(labels))
    tloss.backward()
    assert abs(loss.item() - tloss.item()) <= 0.02 * abs(tloss.item())
    for (name, p), tp in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert p.dtype == cn.float32 and p.grad.dtype == cn.float32, name
        g, tg = p.grad.numpy(), tp.grad.numpy()
        # bfloat16 activations, weights and upstream gradients, summed in different
        # orders: each element is within a few bfloat16 ulps of the sum of its terms'
        # magnitudes, which the gradient's norm stands for (a bias gradient is a sum over
        # many positions that cancel)
        assert np.abs(g - tg).max() <= 4 * 2.0**-8 * np.linalg.norm(tg), name


def test_lstm_under_autocast_runs_in_bfloat16_with_float32_weights():
    lstm = cn.nn.LSTM(4, 3)
    x = cn.tensor(RNG.standard_normal((5, 2, 4)).astype(np.float32))
    with autocast("cpu"):
        out, (h, c) = lstm(x)
    assert out.dtype == cn.bfloat16
    out.float().sum().backward()
    for p in lstm.parameters():
        assert p.grad is not None and p.grad.dtype == cn.float32
    with cn.no_grad():
        ref, _ = lstm(x)
    np.testing.assert_allclose(out.float().numpy(), ref.numpy(), atol=0.03)


def test_nesting_disable_and_restore():
    x = cn.tensor(X2)
    w = cn.tensor(W2)
    assert not cn.amp.is_autocast_enabled("cpu")
    with autocast("cpu"):
        assert cn.amp.is_autocast_enabled("cpu")
        assert (x @ w.t()).dtype == cn.bfloat16
        with autocast("cpu", enabled=False):
            assert not cn.amp.is_autocast_enabled("cpu")
            assert (x @ w.t()).dtype == cn.float32
        with autocast("cpu", dtype=cn.float16):
            assert (x @ w.t()).dtype == cn.float16
            assert cn.amp.get_autocast_dtype("cpu") == cn.float16
        assert (x @ w.t()).dtype == cn.bfloat16
    assert (x @ w.t()).dtype == cn.float32
    with pytest.raises(KeyError), autocast("cpu"):
        raise KeyError("state is restored on an exception")
    assert not cn.amp.is_autocast_enabled("cpu")


def test_decorator_and_torch_alias():
    assert cn.autocast is autocast

    @cn.autocast("cpu")
    def product(a, b):
        return a @ b

    assert product(cn.tensor(X2), cn.tensor(W2.T)).dtype == cn.bfloat16
    assert (cn.tensor(X2) @ cn.tensor(W2.T)).dtype == cn.float32


def test_cuda_region_leaves_cpu_tensors_alone():
    with autocast("cuda"):
        assert cn.amp.is_autocast_enabled("cuda")
        assert not cn.amp.is_autocast_enabled("cpu")
        assert (cn.tensor(X2) @ cn.tensor(W2.T)).dtype == cn.float32
    assert cn.amp.get_autocast_dtype("cuda") == cn.float16


def test_float64_is_never_cast(torch):
    x = cn.tensor(X2.astype(np.float64))
    with autocast("cpu"):
        assert (x @ x.t()).dtype == cn.float64
        assert F.mse_loss(x, x * 2).dtype == cn.float64
    tx = torch.tensor(X2.astype(np.float64))
    with torch.autocast("cpu"):
        assert (tx @ tx.t()).dtype == torch.float64


def test_bad_arguments():
    with pytest.raises(ValueError, match="device_type"):
        autocast("tpu")
    with pytest.raises(TypeError, match="enabled"):
        autocast("cpu", enabled=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autocast("cpu", dtype=cn.float32):
            assert not cn.amp.is_autocast_enabled("cpu")
    assert any("not supported" in str(w.message) for w in caught)


def test_weight_casts_are_cached_for_the_region():
    from convnet.amp import autocast_mode

    w = cn.tensor(W2, requires_grad=True)
    x = cn.tensor(X2)
    with autocast("cpu"):
        a = F.linear(x, w)
        b = F.linear(x * 2, w)
        assert len(autocast_mode._tls.cache) == 1
        # the same cast node feeds both products
        assert a.grad_fn.edges[1] is b.grad_fn.edges[1]
        (a.float().sum() + b.float().sum()).backward()
        # after backward freed the cast node, a new product casts again
        with cn.no_grad():
            w -= 0.5 * w.grad
        c = F.linear(x, w)
        np.testing.assert_allclose(
            c.float().numpy(), (_round(X2, ml_dtypes.bfloat16)
                                @ _round(w.numpy(), ml_dtypes.bfloat16).T), rtol=2**-7,
            atol=1e-6)
        c.float().sum().backward()
    assert autocast_mode._tls.cache == {}
    np.testing.assert_allclose(w.grad.numpy(), 4 * _round(X2, ml_dtypes.bfloat16).sum(0)[None]
                               .repeat(3, 0), rtol=2**-6)
    with autocast("cpu", cache_enabled=False):
        F.linear(x, w)
        assert autocast_mode._tls.cache == {}
    with autocast("cpu"), cn.no_grad():  # no graph: nothing worth caching
        F.linear(x, w)
        assert autocast_mode._tls.cache == {}


def test_train_step_with_scaler_float16():
    model = cn.nn.Linear(7, 3)
    opt = cn.optim.SGD(model.parameters(), lr=0.1)
    scaler = cn.amp.GradScaler("cpu", init_scale=256.0)
    before = model.weight.numpy().copy()
    with autocast("cpu", dtype=cn.float16):
        loss = F.cross_entropy(model(cn.tensor(X2)), cn.tensor(LABELS))
    assert loss.dtype == cn.float32
    scaler.scale(loss).backward()
    assert model.weight.grad.dtype == cn.float32
    scaler.step(opt)
    scaler.update()
    assert not np.array_equal(model.weight.numpy(), before)
    assert scaler.get_scale() == 256.0


def test_cuda_policy_tables_follow_torch():
    """CUDA tensors need a GPU; the tables that decide their casts are checked here: on
    CUDA PyTorch 2.13 also runs softmax, log-softmax, the norms, sum, exp, log and pow in
    float32, and refuses binary_cross_entropy (unsafe in float16)."""
    from convnet.amp._policy import composite_policy, policy_of
    from convnet.functional import _nn, _norm, _ops

    for cls in (_nn.Softmax, _nn.LogSoftmax, _norm.LayerNorm, _ops.Sum, _ops.Exp):
        assert policy_of(cls, "cuda") == "float32" and policy_of(cls, "cpu") is None
    for cls in (_nn.Conv2d, _nn.Linear, _ops.MatMul):
        assert policy_of(cls, "cuda") == policy_of(cls, "cpu") == "lower"
    assert policy_of(_ops.Mean, "cuda") is None  # mean is not on PyTorch's list
    assert composite_policy("mse_loss", "cuda") == "float32"
    with pytest.raises(RuntimeError, match="unsafe to autocast"):
        composite_policy("binary_cross_entropy", "cuda")


@pytest.mark.gpu
def test_cuda_autocast_on_the_gpu(torch):
    if not cn.cuda.is_available():
        pytest.skip("no CUDA device")
    x = cn.tensor(X2, device="cuda")
    w = cn.tensor(W2, device="cuda", requires_grad=True)
    with autocast("cuda"):
        y = x @ w.t()
        s = F.softmax(y, 1)
        loss = F.mse_loss(s, s.detach() * 0.5)
    assert y.dtype == cn.float16 and s.dtype == cn.float32 and loss.dtype == cn.float32
    loss.backward()
    assert w.grad.dtype == cn.float32 and w.grad.device == "cuda"
    scaler = cn.amp.GradScaler("cuda", init_scale=4.0)
    assert scaler.scale(loss).item() == pytest.approx(4 * loss.item())


def test_fused_sequential_pairs_run_in_the_autocast_dtype():
    # nn.Sequential fuses Conv2d+ReLU and Linear+ReLU into one op: autocast must lower that
    # op as it lowers the convolution and the linear layer alone (torch: bfloat16 outputs)
    cn.manual_seed(0)
    model = cn.nn.Sequential(cn.nn.Conv2d(3, 4, 3), cn.nn.ReLU(), cn.nn.Flatten(),
                             cn.nn.Linear(4 * 6 * 6, 5), cn.nn.ReLU())
    x = cn.randn(2, 3, 8, 8)
    with cn.autocast("cpu", dtype=cn.bfloat16):
        y = model(x)
        inner = model[1](model[0](x))
    assert y.dtype == cn.bfloat16 and inner.dtype == cn.bfloat16
    y.float().sum().backward()
    assert model[0].weight.grad.dtype == cn.float32
    assert model[3].weight.grad.dtype == cn.float32
