"""Every differentiable op against PyTorch (forward, gradients) and finite differences,
over float32/float64 and the native/Numba kernel backends."""

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from tests.helpers import check_op, torch_or_skip


def tf():
    """torch.nn.functional, for the tables of cases (resolved inside the tests, which skip
    where PyTorch is missing)."""
    return torch_or_skip().nn.functional


@pytest.fixture
def kernels_backend(backend):
    with cn.kernels.use_backend(backend):
        yield backend


def away_from_zero(rng, shape, margin=0.05):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, margin * np.sign(x + 1e-12) + x, x)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, "same", 2),
                                                     ((2, 1), (0, 2), 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(torch, stride, padding, dilation, bias, dtype, kernels_backend, rng):
    TF = torch.nn.functional
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    inputs = [x, w, b] if bias else [x, w]

    def ours(*t):
        return F.conv2d(*t[:2], t[2] if bias else None, stride, padding, dilation)

    def theirs(*t):
        if padding == "same":
            # TF SAME for these shapes: pad (top, bottom, left, right) = (2, 2, 1, 1)
            return TF.conv2d(TF.pad(t[0], (1, 1, 2, 2)), t[1], t[2] if bias else None, stride,
                             0, dilation)
        return TF.conv2d(*t[:2], t[2] if bias else None, stride, padding, dilation)

    check_op(ours, theirs, inputs, dtype, rng=rng)


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), 1)])
def test_pools(torch, kernel, stride, padding, dtype, kernels_backend, rng):
    TF = torch.nn.functional
    x = rng.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) / 10.0  # distinct: no max ties
    check_op(lambda t: F.max_pool2d(t, kernel, stride, padding),
             lambda t: TF.max_pool2d(t, kernel, stride, padding), [x], dtype, rng=rng)
    for cip in (True, False):
        check_op(lambda t, c=cip: F.avg_pool2d(t, kernel, stride, padding, c),
                 lambda t, c=cip: TF.avg_pool2d(t, kernel, stride, padding, count_include_pad=c),
                 [x], dtype, rng=rng)


@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (8, 5)])
def test_batch_norm_training_and_eval(torch, shape, dtype, kernels_backend, rng):
    TF = torch.nn.functional
    x = rng.standard_normal(shape) * 2 + 1
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    rm, rv = np.zeros(shape[1]), np.ones(shape[1])
    check_op(lambda *t: F.batch_norm(t[0], None, None, t[1], t[2], training=True),
             lambda *t: TF.batch_norm(t[0], None, None, t[1], t[2], training=True),
             [x, w, b], dtype, rng=rng, scale=4)
    rm2, rv2 = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    check_op(lambda *t: F.batch_norm(t[0], rm2.astype(dtype), rv2.astype(dtype), t[1], t[2]),
             lambda *t: TF.batch_norm(t[0], torch.tensor(rm2), torch.tensor(rv2), t[1], t[2]),
             [x, w, b], dtype, rng=rng)
    # running statistics follow PyTorch's update
    rm_c, rv_c = rm.astype(dtype), rv.astype(dtype)
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)
    F.batch_norm(cn.tensor(x.astype(dtype)), rm_c, rv_c, training=True, momentum=0.3)
    TF.batch_norm(torch.tensor(x), rm_t, rv_t, training=True, momentum=0.3)
    np.testing.assert_allclose(rm_c, rm_t.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv_c, rv_t.numpy(), rtol=1e-5, atol=1e-6)


def test_linear(torch, dtype, kernels_backend, rng):
    TF = torch.nn.functional
    x, w, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((6, 5)), rng.standard_normal(6)
    check_op(F.linear, TF.linear, [x, w, b], dtype, rng=rng)
    check_op(lambda a, c: F.linear(a, c), lambda a, c: TF.linear(a, c), [x[0], w], dtype,
             rng=rng)


ACTIVATIONS = [
    ("relu", F.relu, lambda t: t.relu()),
    ("leaky_relu", lambda t: F.leaky_relu(t, 0.2), lambda t: tf().leaky_relu(t, 0.2)),
    ("elu", lambda t: F.elu(t, 0.7), lambda t: tf().elu(t, 0.7)),
    ("selu", F.selu, lambda t: tf().selu(t)),
    ("sigmoid", F.sigmoid, lambda t: t.sigmoid()),
    ("tanh", F.tanh, lambda t: t.tanh()),
    ("softmax", lambda t: F.softmax(t, 1), lambda t: t.softmax(1)),
    ("log_softmax", lambda t: F.log_softmax(t, -1), lambda t: t.log_softmax(-1)),
]


@pytest.mark.parametrize("name,ours,theirs", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activations(name, ours, theirs, dtype, rng):
    x = away_from_zero(rng, (4, 7)) * 3
    check_op(ours, theirs, [x], dtype, rng=rng)


def test_sigmoid_and_log_softmax_are_stable_at_extremes():
    x = cn.tensor(np.array([[-1000.0, 0.0, 1000.0]], np.float32), requires_grad=True)
    s = F.sigmoid(x)
    np.testing.assert_array_equal(s.numpy(), [[0.0, 0.5, 1.0]])
    ls = F.log_softmax(x, 1)
    assert np.isfinite(ls.numpy()).all()
    ls.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


LOSSES = [
    ("mse", F.mse_loss, lambda *a, **k: tf().mse_loss(*a, **k), False),
    ("l1", F.l1_loss, lambda *a, **k: tf().l1_loss(*a, **k), False),
    ("bce_logits", F.binary_cross_entropy_with_logits,
     lambda *a, **k: tf().binary_cross_entropy_with_logits(*a, **k), False),
    ("bce", lambda a, b: F.binary_cross_entropy(F.sigmoid(a), b),
     lambda a, b: tf().binary_cross_entropy(a.sigmoid(), b), False),
]


@pytest.mark.parametrize("name,ours,theirs,_", LOSSES, ids=[x[0] for x in LOSSES])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_and_binary_losses(torch, name, ours, theirs, _, reduction, dtype, rng):
    TF = torch.nn.functional
    a = away_from_zero(rng, (5, 3))
    b = rng.uniform(0, 1, (5, 3))
    check_op(lambda x, y: ours(x, y, reduction=reduction) if name != "bce" else
             F.binary_cross_entropy(F.sigmoid(x), y, reduction=reduction),
             lambda x, y: theirs(x, y, reduction=reduction) if name != "bce" else
             TF.binary_cross_entropy(torch.sigmoid(x), y, reduction=reduction),
             [a, b], dtype, rng=rng)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_and_nll(torch, smoothing, reduction, dtype, rng):
    TF = torch.nn.functional
    logits = rng.standard_normal((6, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2, 0])
    check_op(lambda z, t: F.cross_entropy(z, t, reduction=reduction, label_smoothing=smoothing),
             lambda z, t: TF.cross_entropy(z, t, reduction=reduction,
                                           label_smoothing=smoothing),
             [logits, labels], dtype, rng=rng, needs_grad=[True, False])
    check_op(lambda z, t: F.nll_loss(F.log_softmax(z, 1), t, reduction=reduction),
             lambda z, t: TF.nll_loss(TF.log_softmax(z, 1), t, reduction=reduction),
             [logits, labels], dtype, rng=rng, needs_grad=[True, False])


def test_cross_entropy_spatial(torch, rng):
    TF = torch.nn.functional
    logits = rng.standard_normal((2, 3, 4, 5))
    labels = rng.integers(0, 3, (2, 4, 5))
    check_op(F.cross_entropy, TF.cross_entropy, [logits, labels], np.float64, rng=rng,
             needs_grad=[True, False])


def test_dropout_train_and_eval(rng):
    cn.manual_seed(0)
    x = cn.ones(200, 500)
    y = F.dropout(x, 0.3, training=True)
    kept = (y.numpy() != 0).mean()
    assert abs(kept - 0.7) < 0.01
    np.testing.assert_allclose(np.unique(y.numpy()), [0.0, 1 / 0.7], rtol=1e-6)
    assert F.dropout(x, 0.3, training=False) is x
    xg = cn.ones(10, 10, requires_grad=True)
    out = F.dropout(xg, 0.5, training=True)
    out.sum().backward()
    np.testing.assert_array_equal(xg.grad.numpy(), out.numpy())  # same mask, same scale


def test_alpha_dropout_keeps_selu_statistics():
    cn.manual_seed(1)
    x = F.selu(cn.randn(400, 1000))  # SELU keeps N(0, 1) inputs at mean 0, variance 1
    y = F.alpha_dropout(x, 0.2, training=True)
    assert abs(float(y.numpy().mean())) < 0.02
    assert abs(float(y.numpy().var()) - 1.0) < 0.03
    assert (y.numpy() != x.numpy()).mean() > 0.15  # it did drop
    assert F.alpha_dropout(x, 0.2, training=False) is x


@pytest.mark.parametrize("call,exc,message", [
    (lambda: F.cross_entropy(cn.randn(3, 4), cn.tensor(np.array([0, 4, 1]))), ValueError,
     r"labels must be in \[0, 4\)"),
    (lambda: F.cross_entropy(cn.randn(3, 4), cn.tensor(np.array([0.0, 1, 1]))), TypeError,
     r"integer class labels"),
    (lambda: F.mse_loss(cn.randn(3, 4), cn.randn(4, 3)), ValueError, r"target shape"),
    (lambda: F.linear(cn.randn(3, 4), cn.randn(2, 5)), ValueError, r"input has 4 features"),
    (lambda: F.dropout(cn.randn(3), 1.5), ValueError, r"p: dropout probability"),
    (lambda: F.binary_cross_entropy(cn.randn(3) + 5, cn.ones(3)), ValueError, r"probabilities"),
])
def test_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call()
