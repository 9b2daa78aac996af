"""The losses' options against torch.nn.functional (values and gradients) and float64
finite differences; the loss modules against torch.nn's."""

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from tests.helpers import check_op, torch_or_skip


def labels_with_ignored(rng, shape, c, ignore=-100):
    y = rng.integers(0, c, shape)
    y.flat[::3] = ignore
    return y


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(5, 4), (3, 5, 7), (2, 3, 2, 3), (6,)],
                         ids=["NC", "NCL", "NCHW", "C"])
def test_cross_entropy_weight_ignore_index(reduction, smoothing, shape, dtype, rng):
    torch = torch_or_skip()
    c = shape[0] if len(shape) == 1 else shape[1]
    logits = rng.standard_normal(shape) * 2
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    labels = labels_with_ignored(rng, tshape, c, ignore=1) if tshape else np.array(2)
    weight = rng.uniform(0.5, 2.0, c)

    def ours(z, t, w):
        return F.cross_entropy(z, t, weight=w, ignore_index=1, reduction=reduction,
                               label_smoothing=smoothing)

    def theirs(z, t, w):
        return torch.nn.functional.cross_entropy(z, t, weight=w, ignore_index=1,
                                                 reduction=reduction,
                                                 label_smoothing=smoothing)

    check_op(ours, theirs, [logits, labels, weight], dtype, rng=rng,
             needs_grad=[True, False, False])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probability_targets(reduction, smoothing, weighted, dtype, rng):
    torch = torch_or_skip()
    logits = rng.standard_normal((4, 5, 3))
    probs = rng.dirichlet(np.ones(5), (4, 3)).transpose(0, 2, 1)
    weight = rng.uniform(0.5, 2.0, 5)
    wt = (lambda w: w) if weighted else (lambda w: None)
    check_op(lambda z, p, w: F.cross_entropy(z, p, weight=wt(w), reduction=reduction,
                                             label_smoothing=smoothing),
             lambda z, p, w: torch.nn.functional.cross_entropy(
                 z, p, weight=wt(w), reduction=reduction, label_smoothing=smoothing),
             [logits, probs, weight], dtype, rng=rng, needs_grad=[True, True, False])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_weight_ignore_index(reduction, dtype, rng):
    torch = torch_or_skip()
    logp = np.log(rng.dirichlet(np.ones(4), 7))
    labels = labels_with_ignored(rng, (7,), 4)
    weight = rng.uniform(0.5, 2.0, 4)
    check_op(lambda x, t, w: F.nll_loss(x, t, weight=w, reduction=reduction),
             lambda x, t, w: torch.nn.functional.nll_loss(x, t, weight=w,
                                                          reduction=reduction),
             [logp, labels, weight], dtype, rng=rng, needs_grad=[True, False, False])


def test_cross_entropy_all_ignored_is_nan_like_torch():
    torch = torch_or_skip()
    z = np.zeros((2, 3), np.float32)
    t = np.array([-100, -100])
    ref = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(t))
    ours = F.cross_entropy(cn.tensor(z), cn.tensor(t))
    assert np.isnan(ref.item()) and np.isnan(ours.item())


@pytest.mark.parametrize("name,kw", [
    ("smooth_l1_loss", dict(beta=1.0)), ("smooth_l1_loss", dict(beta=0.3)),
    ("smooth_l1_loss", dict(beta=0.0)), ("huber_loss", dict(delta=1.0)),
    ("huber_loss", dict(delta=2.5)), ("mse_loss", {}), ("l1_loss", {}),
])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(name, kw, reduction, dtype, rng):
    torch = torch_or_skip()
    a = rng.standard_normal((3, 7)) * 2
    b = a + rng.choice([-1, 1], a.shape) * rng.uniform(0.05, 4, a.shape)  # no kink ties
    check_op(lambda x, y: getattr(F, name)(x, y, reduction=reduction, **kw),
             lambda x, y: getattr(torch.nn.functional, name)(x, y, reduction=reduction, **kw),
             [a, b], dtype, rng=rng)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos", [False, True])
def test_bce_with_logits_weight_pos_weight(reduction, weighted, pos, dtype, rng):
    torch = torch_or_skip()
    z = rng.standard_normal((6, 3)) * 3
    t = rng.uniform(0, 1, (6, 3))
    w = rng.uniform(0.2, 2, (6, 1))
    pw = rng.uniform(0.5, 3, 3)

    def call(fn):
        return lambda z, t, w, pw: fn(z, t, weight=w if weighted else None,
                                      pos_weight=pw if pos else None, reduction=reduction)

    check_op(call(F.binary_cross_entropy_with_logits),
             call(torch.nn.functional.binary_cross_entropy_with_logits),
             [z, t, w, pw], dtype, rng=rng, needs_grad=[True, True, False, False])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_weight(reduction, dtype, rng):
    torch = torch_or_skip()
    p = rng.uniform(0.05, 0.95, (4, 5))
    t = rng.uniform(0, 1, (4, 5))
    w = rng.uniform(0.2, 2, (5,))
    check_op(lambda p, t, w: F.binary_cross_entropy(p, t, weight=w, reduction=reduction),
             lambda p, t, w: torch.nn.functional.binary_cross_entropy(
                 p, t, weight=w, reduction=reduction),
             [p, t, w], dtype, rng=rng, needs_grad=[True, False, False])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target, dtype, rng):
    torch = torch_or_skip()
    x = np.log(rng.dirichlet(np.ones(5), 3))
    t = rng.dirichlet(np.ones(5), 3)
    t[0, 1] = 0.0  # a zero target term counts as 0
    if log_target:
        t = np.log(rng.dirichlet(np.ones(5), 3))
    check_op(lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target),
             lambda x, t: torch.nn.functional.kl_div(x, t, reduction=reduction,
                                                     log_target=log_target),
             [x, t], dtype, rng=rng, needs_grad=[True, log_target])


def test_one_hot_matches_torch(rng):
    torch = torch_or_skip()
    y = rng.integers(0, 5, (3, 4))
    for k in (-1, 7):
        ours = F.one_hot(cn.tensor(y), k)
        ref = torch.nn.functional.one_hot(torch.tensor(y), k)
        assert ours.dtype == np.int64 and ours.shape == tuple(ref.shape)
        np.testing.assert_array_equal(ours.numpy(), ref.numpy())
    for bad in (np.array([0, 5]), np.array([-1, 0])):
        with pytest.raises(RuntimeError):
            torch.nn.functional.one_hot(torch.tensor(bad), 5)
        with pytest.raises(RuntimeError, match="Class values"):
            F.one_hot(cn.tensor(bad), 5)


def test_errors_match_torch_classes():
    torch = torch_or_skip()
    z, tz = cn.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(IndexError):
        torch.nn.functional.cross_entropy(tz, torch.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match=r"labels must be in \[0, 4\)"):
        F.cross_entropy(z, cn.tensor(np.array([0, 4, 1])))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(z, cn.tensor(np.array([0, 1, 1])), reduction="avg")
    with pytest.raises(ValueError, match="target: expected shape"):
        F.cross_entropy(z, cn.tensor(np.array([0, 1])))
    with pytest.raises(RuntimeError):
        torch.nn.functional.binary_cross_entropy(torch.ones(2) * 2, torch.ones(2))
    with pytest.raises(RuntimeError, match="probabilities"):
        F.binary_cross_entropy(cn.ones(2) * 2, cn.ones(2))


LOSS_MODULES = [
    ("CrossEntropyLoss", dict(weight=[1.0, 2.0, 0.5], ignore_index=0, label_smoothing=0.1),
     "labels"),
    ("CrossEntropyLoss", dict(reduction="sum"), "labels"),
    ("NLLLoss", dict(weight=[1.0, 2.0, 0.5]), "labels"),
    ("MSELoss", {}, "values"), ("L1Loss", dict(reduction="none"), "values"),
    ("SmoothL1Loss", dict(beta=0.5), "values"), ("HuberLoss", dict(delta=0.7), "values"),
    ("BCELoss", dict(weight=[1.0, 2.0, 0.5]), "probs"),
    ("BCEWithLogitsLoss", dict(pos_weight=[1.0, 2.0, 0.5]), "probs"),
    ("KLDivLoss", dict(reduction="batchmean"), "probs"),
]


@pytest.mark.parametrize("name,kw,kind", LOSS_MODULES, ids=[m[0] for m in LOSS_MODULES])
def test_loss_modules_match_torch(name, kw, kind, rng):
    torch = torch_or_skip()
    x = rng.uniform(0.1, 0.9, (4, 3))
    if kind == "labels":
        t = rng.integers(0, 3, 4)
    else:
        t = rng.uniform(0, 1, (4, 3))
    tkw = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v
           for k, v in kw.items()}
    ours_mod, ref_mod = getattr(cn.nn, name)(**kw), getattr(torch.nn, name)(**tkw)
    xo, xt = cn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lo, lt = ours_mod(xo, cn.tensor(t)), ref_mod(xt, torch.tensor(t))
    np.testing.assert_allclose(lo.numpy(), lt.detach().numpy(), rtol=1e-10)
    lo.sum().backward()
    lt.sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    if "weight" in kw:
        assert list(dict(ours_mod.state_dict())) == list(ref_mod.state_dict())


def test_loss_module_legacy_flags_and_repr():
    assert cn.nn.MSELoss(size_average=False).reduction == "sum"
    assert cn.nn.L1Loss(reduce=False).reduction == "none"
    assert isinstance(cn.nn.CrossEntropyLoss(), cn.nn.Module)
