"""Modules against torch.nn with the same weights, copied through state_dict."""

import numpy as np
import pytest

import convnet as cn
from tests.helpers import assert_close, torch_or_skip

nn = cn.nn


def compare(ours, theirs, x, dtype, train=True, scale=1.0):
    """Forward, input and parameter gradients, buffers; the oracle runs in float64."""
    torch = torch_or_skip()
    ours.train(train)
    theirs.train(train)
    theirs.double()
    xt = torch.tensor(x.astype(dtype).astype(np.float64), requires_grad=True)
    xo = cn.tensor(x.astype(dtype), requires_grad=True)
    y, yt = ours(xo), theirs(xt)
    assert_close(y.numpy(), yt.detach().numpy(), dtype, "forward", scale)
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    y.backward(cn.tensor(dy))
    yt.backward(torch.tensor(dy.astype(np.float64)))
    assert_close(xo.grad.numpy(), xt.grad.numpy(), dtype, "input grad", scale)
    named_t = dict(theirs.named_parameters())
    # a bias followed by batch norm has a zero gradient: judge it on the model's gradient scale
    gscale = max(float(p.grad.abs().max()) for p in theirs.parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad.numpy(), named_t[name].grad.numpy(), dtype, f"grad {name}", scale,
                     floor=0.1 * gscale)
    for name, b in theirs.named_buffers():
        if b.dtype.is_floating_point:
            assert_close(dict(ours.named_buffers())[name].numpy(), b.numpy(), dtype, name, scale)


def lenet_pair():
    torch = torch_or_skip()
    T = torch.nn
    ours = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 32), nn.BatchNorm1d(32), nn.ELU(), nn.Dropout(0.0),
                         nn.Linear(32, 10), nn.LogSoftmax(dim=1))
    T = torch.nn
    theirs = T.Sequential(T.Conv2d(1, 6, 5, padding=2), T.Tanh(), T.AvgPool2d(2),
                          T.Conv2d(6, 16, 5), T.ReLU(), T.MaxPool2d(2), T.Flatten(),
                          T.Linear(400, 32), T.BatchNorm1d(32), T.ELU(), T.Dropout(0.0),
                          T.Linear(32, 10), T.LogSoftmax(dim=1))
    return ours, theirs


@pytest.mark.parametrize("train", [True, False])
def test_small_cnn_matches_torch(torch, train, dtype, rng):
    cn.manual_seed(0)
    ours, theirs = lenet_pair()
    ours.to(dtype=dtype)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    compare(ours, theirs, rng.standard_normal((5, 1, 28, 28)), dtype, train, scale=5)


def test_batchnorm2d_running_stats_and_eval(torch, rng):
    ours, theirs = nn.BatchNorm2d(3, momentum=0.2), torch.nn.BatchNorm2d(3, momentum=0.2)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32) * 2 + 1
        compare(ours, theirs, x, np.float32, train=True)
        ours.zero_grad()
        theirs.zero_grad()
    assert int(ours.num_batches_tracked.item()) == 3
    compare(ours, theirs, rng.standard_normal((2, 3, 5, 5)), np.float32, train=False)


def test_state_dict_keys_and_shapes_match_torch(torch):
    ours, theirs = lenet_pair()
    mine = ours.state_dict()
    ref = theirs.state_dict()
    assert list(mine) == list(ref)
    for k in ref:
        assert tuple(mine[k].shape) == tuple(ref[k].shape), k
    theirs.load_state_dict({k: torch.tensor(v) for k, v in mine.items()})  # loads cleanly
    ours.load_state_dict({k: v.numpy() for k, v in ref.items()})


def test_default_init_matches_torch_distribution():
    cn.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), ...)
    w = lin.weight.numpy()
    assert w.min() >= -bound and w.max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound
    conv = nn.Conv2d(16, 8, 3)
    assert np.abs(conv.weight.numpy()).max() <= 1 / np.sqrt(16 * 9)


@pytest.mark.parametrize("name,fan,expected_std", [
    ("xavier_uniform_", None, np.sqrt(2 / (200 + 100))),
    ("xavier_normal_", None, np.sqrt(2 / (200 + 100))),
    ("kaiming_normal_", "relu", np.sqrt(2 / 200)),
    ("kaiming_uniform_", "relu", np.sqrt(2 / 200)),
    ("lecun_normal_", None, np.sqrt(1 / 200)),
])
def test_init_functions_have_the_right_spread(name, fan, expected_std):
    cn.manual_seed(0)
    t = cn.zeros(100, 200)
    fn = getattr(nn.init, name)
    fn(t, nonlinearity=fan) if fan else fn(t)
    assert abs(t.numpy().std() - expected_std) < 0.03 * expected_std
    assert abs(t.numpy().mean()) < 0.05 * expected_std


def test_transfer_learning_freeze_replace_head_unfreeze(rng):
    cn.manual_seed(0)
    body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
    pretrained = nn.Sequential(body, nn.Linear(16, 5))
    model = nn.Sequential(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16),
                                        nn.ReLU()), nn.Linear(16, 3))
    report = model.load_state_dict(
        {k: v for k, v in pretrained.state_dict().items() if k.startswith("0.")}, strict=False)
    assert report["missing_keys"] == ["1.weight", "1.bias"]
    np.testing.assert_array_equal(model[0][0].weight.numpy(), body[0].weight.numpy())
    model[0].requires_grad_(False)
    opt = cn.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    frozen = model[0][0].weight.numpy().copy()
    head = model[1].weight.numpy().copy()
    x = cn.tensor(rng.standard_normal((4, 8)).astype(np.float32))
    cn.functional.cross_entropy(model(x), cn.tensor(np.array([0, 1, 2, 0]))).backward()
    opt.step()
    np.testing.assert_array_equal(model[0][0].weight.numpy(), frozen)
    assert model[0][0].weight.grad is None
    assert not np.array_equal(model[1].weight.numpy(), head)
    model[0].requires_grad_(True)
    assert model.num_parameters(trainable_only=True) == model.num_parameters()
    before = model[0][0].weight.numpy().copy()
    with pytest.raises(ValueError, match=r"1.weight has shape \(5, 16\)"):
        model.load_state_dict(pretrained.state_dict())
    np.testing.assert_array_equal(model[0][0].weight.numpy(), before)  # nothing half-loaded
    with pytest.raises(KeyError, match="missing keys"):
        model.load_state_dict({})


def test_module_bookkeeping():
    m = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5))
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(m.modules())) == 3 and len(list(m.children())) == 2
    m.eval()
    assert not m[1].training
    assert "Linear(in_features=2, out_features=3, bias=True)" in repr(m)
    ml = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 1)])
    assert len(list(ml.parameters())) == 4
    with pytest.raises(ValueError, match="shape"):
        m.load_state_dict({"0.weight": np.zeros((9, 9)), "0.bias": np.zeros(3)})
    with pytest.raises(ValueError, match="BatchNorm2d"):
        nn.BatchNorm2d(3)(cn.randn(2, 4, 5, 5))


SINGLE = [
    ("Linear", lambda m: m.Linear(7, 5), (4, 7)),
    ("Linear-nobias", lambda m: m.Linear(7, 5, bias=False), (3, 2, 7)),
    ("Conv2d", lambda m: m.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1), (2, 3, 9, 8)),
    ("Conv2d-dil", lambda m: m.Conv2d(2, 3, 3, padding=2, dilation=2, bias=False), (1, 2, 7, 7)),
    ("MaxPool2d", lambda m: m.MaxPool2d(3, 2, 1), (2, 3, 9, 9)),
    ("AvgPool2d", lambda m: m.AvgPool2d(2), (2, 3, 8, 6)),
    ("AvgPool2d-nopad", lambda m: m.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 7, 7)),
    ("BatchNorm1d", lambda m: m.BatchNorm1d(6), (8, 6)),
    ("BatchNorm2d", lambda m: m.BatchNorm2d(3), (4, 3, 5, 5)),
    ("ReLU", lambda m: m.ReLU(), (4, 9)),
    ("LeakyReLU", lambda m: m.LeakyReLU(0.2), (4, 9)),
    ("ELU", lambda m: m.ELU(0.5), (4, 9)),
    ("SELU", lambda m: m.SELU(), (4, 9)),
    ("Sigmoid", lambda m: m.Sigmoid(), (4, 9)),
    ("Tanh", lambda m: m.Tanh(), (4, 9)),
    ("Softmax", lambda m: m.Softmax(dim=1), (4, 9)),
    ("LogSoftmax", lambda m: m.LogSoftmax(dim=-1), (4, 9)),
    ("Flatten", lambda m: m.Flatten(), (2, 3, 4)),
    ("Dropout-eval", lambda m: m.Dropout(0.5), (4, 9)),
    ("AlphaDropout-eval", lambda m: m.AlphaDropout(0.5), (4, 9)),
]


@pytest.mark.parametrize("name,make,shape", SINGLE, ids=[s[0] for s in SINGLE])
@pytest.mark.parametrize("train", [True, False])
def test_each_module_matches_torch(torch, name, make, shape, train, dtype, rng):
    if "Dropout" in name and train:
        pytest.skip("random masks differ by design; dropout is tested statistically")
    cn.manual_seed(0)
    ours = make(cn.nn)
    ours.to(dtype=dtype)
    theirs = make(torch.nn)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = rng.standard_normal(shape)
    if "MaxPool" in name:
        x = rng.permutation(x.size).reshape(shape) / 7.0  # no ties
    if next(iter(ours.parameters()), None) is None:
        ours.train(train)
        theirs.train(train)
        xo = cn.tensor(x.astype(dtype), requires_grad=True)
        xt = torch.tensor(x.astype(dtype).astype(np.float64), requires_grad=True)
        y, yt = ours(xo), theirs(xt)
        assert_close(y.numpy(), yt.detach().numpy(), dtype, "forward")
        dy = rng.standard_normal(y.shape)
        y.backward(cn.tensor(dy.astype(dtype)))
        yt.backward(torch.tensor(dy))
        assert_close(xo.grad.numpy(), xt.grad.numpy(), dtype, "input grad")
        return
    compare(ours, theirs, x, dtype, train)
