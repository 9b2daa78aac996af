"""LayerNorm, GroupNorm, Conv1d, 1-D pools, Softplus, channel dropout, Unflatten, the
containers and the Module hooks, against torch (values, gradients, shapes) and float64
finite differences."""

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from tests.helpers import assert_close, check_op, torch_or_skip


@pytest.mark.parametrize("shape,norm", [((3, 5), (5,)), ((2, 3, 7), (7,)),
                                         ((2, 3, 4, 5), (4, 5)), ((1, 6), (6,))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(shape, norm, affine, dtype, rng):
    torch = torch_or_skip()
    x = rng.standard_normal(shape) * 2 + 1
    w = rng.uniform(0.5, 1.5, norm)
    b = rng.standard_normal(norm)
    if affine:
        check_op(lambda x, w, b: F.layer_norm(x, norm, w, b, 1e-5),
                 lambda x, w, b: torch.nn.functional.layer_norm(x, norm, w, b, 1e-5),
                 [x, w, b], dtype, rng=rng)
    else:
        check_op(lambda x: F.layer_norm(x, norm), lambda x: torch.nn.functional.layer_norm(
            x, norm), [x], dtype, rng=rng)


@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((3, 4, 3, 5), 2), ((1, 5, 7), 5),
                                           ((2, 4), 1)])
def test_group_norm(shape, groups, dtype, rng):
    torch = torch_or_skip()
    x = rng.standard_normal(shape) * 2 - 1
    c = shape[1]
    w = rng.uniform(0.5, 1.5, c)
    b = rng.standard_normal(c)
    check_op(lambda x, w, b: F.group_norm(x, groups, w, b),
             lambda x, w, b: torch.nn.functional.group_norm(x, groups, w, b),
             [x, w, b], dtype, rng=rng)


@pytest.mark.parametrize("n,c,k,length,kw", [
    (2, 3, 4, 3, dict()), (1, 1, 2, 9, dict(stride=2, padding=1)),
    (3, 5, 3, 11, dict(stride=3, dilation=2)), (2, 2, 1, 4, dict(padding="same")),
    (2, 3, 3, 7, dict(padding="valid")), (1, 4, 2, 6, dict(stride=4, padding=2)),
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv1d(n, c, k, length, kw, bias, dtype, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((n, c, length))
    w = rng.standard_normal((k, c, 3)) if "dilation" not in kw else rng.standard_normal(
        (k, c, 2))
    b = rng.standard_normal(k)
    if bias:
        check_op(lambda x, w, b: F.conv1d(x, w, b, **kw),
                 lambda x, w, b: torch.nn.functional.conv1d(x, w, b, **kw), [x, w, b], dtype,
                 rng=rng)
    else:
        check_op(lambda x, w: F.conv1d(x, w, **kw),
                 lambda x, w: torch.nn.functional.conv1d(x, w, **kw), [x, w], dtype, rng=rng)


@pytest.mark.parametrize("length,k,kw", [(9, 3, {}), (10, 2, dict(stride=3)),
                                         (7, 3, dict(stride=2, padding=1)), (5, 5, {}),
                                         (8, 3, dict(stride=2, ceil_mode=True))])
def test_max_pool1d(length, k, kw, dtype, rng):
    torch = torch_or_skip()
    x = rng.permutation(2 * 3 * length).reshape(2, 3, length) / 7.0  # no ties
    check_op(lambda x: F.max_pool1d(x, k, **kw),
             lambda x: torch.nn.functional.max_pool1d(x, k, **kw), [x], dtype, rng=rng)


@pytest.mark.parametrize("length,k,kw", [(9, 3, {}), (10, 2, dict(stride=3)),
                                         (7, 3, dict(stride=2, padding=1)),
                                         (7, 3, dict(padding=1, count_include_pad=False))])
def test_avg_pool1d(length, k, kw, dtype, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, length))
    check_op(lambda x: F.avg_pool1d(x, k, **kw),
             lambda x: torch.nn.functional.avg_pool1d(x, k, **kw), [x], dtype, rng=rng)


@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 3.0), (0.5, 1.0)])
def test_softplus(beta, threshold, dtype, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((4, 7)) * 5
    x = x[np.abs(x * beta - threshold) > 1e-3].reshape(-1)
    check_op(lambda x: F.softplus(x, beta, threshold),
             lambda x: torch.nn.functional.softplus(x, beta, threshold), [x], dtype, rng=rng)


@pytest.mark.parametrize("fn,shape", [("dropout2d", (20, 30, 3, 4)), ("dropout1d", (20, 30, 5)),
                                      ("dropout2d", (30, 3, 4))])
def test_channel_dropout_drops_whole_channels(fn, shape):
    cn.manual_seed(0)
    x = cn.ones(*shape, requires_grad=True)
    y = getattr(F, fn)(x, 0.4, training=True)
    flat = y.numpy().reshape(shape[0] * shape[1] if len(shape) > 2 and not (
        fn == "dropout2d" and len(shape) == 3) else shape[0] * shape[1], -1)
    per_channel = np.unique(flat, axis=1)
    assert per_channel.shape[1] == 1  # every channel all kept or all dropped
    kept = (flat[:, 0] != 0).mean()
    assert 0.45 < kept < 0.75
    np.testing.assert_allclose(np.unique(flat), [0.0, 1 / 0.6], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())
    assert getattr(F, fn)(x, 0.4, training=False) is x
    m = cn.nn.Dropout2d(0.4) if fn == "dropout2d" else cn.nn.Dropout1d(0.4)
    assert m.eval()(x) is x


def test_modules_match_torch_with_copied_weights(rng):
    torch = torch_or_skip()
    pairs = [
        (cn.nn.LayerNorm([3, 4]), torch.nn.LayerNorm([3, 4]), (2, 5, 3, 4)),
        (cn.nn.LayerNorm(4, elementwise_affine=False),
         torch.nn.LayerNorm(4, elementwise_affine=False), (3, 4)),
        (cn.nn.GroupNorm(2, 6), torch.nn.GroupNorm(2, 6), (3, 6, 5)),
        (cn.nn.Conv1d(3, 5, 3, stride=2, padding=1), torch.nn.Conv1d(3, 5, 3, stride=2,
                                                                      padding=1), (2, 3, 10)),
        (cn.nn.Conv1d(4, 6, 3, groups=2), torch.nn.Conv1d(4, 6, 3, groups=2), (2, 4, 8)),
        (cn.nn.MaxPool1d(3, 2), torch.nn.MaxPool1d(3, 2), (2, 3, 10)),
        (cn.nn.AvgPool1d(2), torch.nn.AvgPool1d(2), (2, 3, 10)),
        (cn.nn.Softplus(beta=2), torch.nn.Softplus(beta=2), (4, 5)),
        (cn.nn.Unflatten(1, (2, 3)), torch.nn.Unflatten(1, (2, 3)), (4, 6, 2)),
        (cn.nn.Identity(), torch.nn.Identity(), (3, 2)),
        (cn.nn.LogSoftmax(dim=1), torch.nn.LogSoftmax(dim=1), (3, 4)),
    ]
    for ours, theirs, shape in pairs:
        theirs = theirs.double()
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        ours.double()
        assert [k for k, _ in ours.named_parameters()] == \
            [k for k, _ in theirs.named_parameters()]
        x = rng.standard_normal(shape)
        xo, xt = cn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yo, yt = ours(xo), theirs(xt)
        assert yo.shape == tuple(yt.shape), type(ours).__name__
        assert_close(yo.numpy(), yt.detach().numpy(), np.float64, type(ours).__name__)
        dy = rng.standard_normal(yo.shape)
        yo.backward(cn.tensor(dy))
        yt.backward(torch.tensor(dy))
        assert_close(xo.grad.numpy(), xt.grad.numpy(), np.float64, type(ours).__name__)
        for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert_close(p.grad.numpy(), q.grad.numpy(), np.float64, name)


def test_conv1d_default_init_matches_torch_bounds():
    torch = torch_or_skip()
    ours, theirs = cn.nn.Conv1d(4, 6, 5), torch.nn.Conv1d(4, 6, 5)
    assert ours.weight.shape == tuple(theirs.weight.shape)
    bound = 1 / np.sqrt(4 * 5)  # kaiming_uniform(a=sqrt 5) and the bias: both 1/sqrt(fan_in)
    assert np.abs(ours.weight.numpy()).max() <= bound
    assert np.abs(ours.bias.numpy()).max() <= bound
    assert np.abs(ours.weight.numpy()).max() > 0.5 * bound


def test_bad_inputs():
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(cn.randn(2, 3), (4,))
    with pytest.raises(ValueError, match="num_groups"):
        F.group_norm(cn.randn(2, 6, 3), 4)
    with pytest.raises(ValueError, match="divisible"):
        cn.nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"\(N, C, L\)"):
        F.conv1d(cn.randn(2, 3), cn.randn(4, 3, 2))
    with pytest.raises(ValueError, match="groups"):
        cn.nn.Conv1d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="groups"):
        F.conv1d(cn.randn(2, 4, 5), cn.randn(6, 3, 2), groups=2)


@pytest.mark.parametrize("c,k,groups", [(4, 6, 2), (3, 3, 3), (6, 4, 2)])
def test_grouped_conv1d(c, k, groups, dtype, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, c, 9))
    w = rng.standard_normal((k, c // groups, 3))
    b = rng.standard_normal(k)
    check_op(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, groups=groups),
             lambda x, w, b: torch.nn.functional.conv1d(x, w, b, stride=2, padding=1,
                                                        groups=groups),
             [x, w, b], dtype, rng=rng)


class Custom(cn.nn.Module):
    """nn.Parameter directly, a buffer, a ModuleDict and a ParameterList."""

    def __init__(self):
        super().__init__()
        self.scale = cn.nn.Parameter(cn.ones(3))
        self.register_buffer("offset", cn.zeros(3))
        self.heads = cn.nn.ModuleDict({"a": cn.nn.Linear(3, 2), "b": cn.nn.Linear(3, 1)})
        self.extra = cn.nn.ParameterList([cn.nn.Parameter(cn.ones(2)), cn.zeros(1)])

    def forward(self, x):
        h = x * self.scale + self.offset
        return self.heads["a"](h).sum() + self.heads["b"](h).sum() + \
            (self.extra[0] * 2).sum() + self.extra[1].sum()


def test_custom_module_registration_matches_torch_keys():
    torch = torch_or_skip()

    class TCustom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(3))
            self.register_buffer("offset", torch.zeros(3))
            self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 2),
                                              "b": torch.nn.Linear(3, 1)})
            self.extra = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2)),
                                                 torch.zeros(1)])

    ours, theirs = Custom(), TCustom()
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [k for k, _ in ours.named_modules()] == [k for k, _ in theirs.named_modules()]
    assert len(ours.heads) == 2 and "a" in ours.heads and list(ours.heads) == ["a", "b"]
    assert isinstance(ours.extra[1], cn.nn.Parameter) and len(ours.extra) == 2
    ours(cn.randn(4, 3)).backward()
    assert ours.scale.grad.shape == (3,) and ours.extra[0].grad.numpy().tolist() == [2.0, 2.0]
    ours.offset = cn.ones(3)  # assigning to a buffer replaces the buffer
    assert "offset" in dict(ours.named_buffers())
    np.testing.assert_array_equal(ours.state_dict()["offset"], np.ones(3))


def test_apply_and_forward_hooks():
    seen = []
    net = cn.nn.Sequential(cn.nn.Linear(3, 4), cn.nn.ReLU(), cn.nn.Linear(4, 2))

    def init_linear(m):
        if isinstance(m, cn.nn.Linear):
            cn.nn.init.constant_(m.weight, 0.5)
            seen.append(type(m).__name__)

    assert net.apply(init_linear) is net and seen == ["Linear", "Linear"]
    outputs = []
    handle = net[1].register_forward_hook(lambda m, args, out: outputs.append(out.shape))
    double = net[2].register_forward_hook(lambda m, args, out: out * 2)
    pre = net[0].register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    x = cn.ones(5, 3)
    y = net(x)
    assert outputs == [(5, 4)]
    # the pre-hook zeroed the input: layer 0 gives its bias, layer 2 sees relu(bias)
    hidden = np.maximum(net[0].bias.numpy(), 0)
    expected = 2 * (0.5 * hidden.sum() + net[2].bias.numpy())
    np.testing.assert_allclose(y.numpy(), np.broadcast_to(expected, (5, 2)), rtol=1e-6)
    for h in (handle, double, pre):
        h.remove()
    net(x)
    assert outputs == [(5, 4)]


REPRS = [
    "Linear(3, 4)", "LayerNorm(5)", "LayerNorm(5, elementwise_affine=False)", "GroupNorm(2, 4)",
    "Conv1d(2, 3, 4, stride=2)", "Conv1d(2, 3, 4, padding=1, bias=False)",
    "Conv1d(4, 6, 3, groups=2)",
    "Unflatten(1, (2, 3))", "Softplus()", "Conv2d(3, 6, 5)",
    "Conv2d(2, 3, 3, padding=1, dilation=2, bias=False)", "Conv2d(1, 2, 3, padding='same')",
    "MaxPool2d(2, 2)", "MaxPool2d(3, 2, 1, ceil_mode=True)", "MaxPool1d(3)", "AvgPool1d(3)",
    "BatchNorm2d(4)", "BatchNorm1d(4, affine=False)", "ReLU()", "ReLU(True)", "Dropout(0.25)",
    "Dropout2d()", "LeakyReLU(0.2, inplace=True)", "LeakyReLU()", "ELU(inplace=True)",
    "Sequential(nn.Linear(2, 3), nn.ReLU())", "Flatten()", "AvgPool2d(2)",
    "ConvTranspose2d(2, 3, 4, 2, 1, bias=False)", "LogSoftmax(dim=1)", "Identity()",
    "ModuleDict({'a': nn.Linear(1, 2)})", "CrossEntropyLoss()",
]


@pytest.mark.parametrize("expr", REPRS)
def test_repr_like_torch(expr):
    torch = torch_or_skip()
    ours = eval("nn." + expr, {"nn": cn.nn})
    theirs = eval("nn." + expr, {"nn": torch.nn})
    assert repr(ours) == repr(theirs)


def test_channel_dropout_inplace():
    cn.manual_seed(2)
    x = cn.ones(4, 6, 3, 3)
    y = F.dropout2d(x, 0.5, training=True, inplace=True)
    assert y is x and set(np.unique(x.numpy())) <= {0.0, 2.0}
    m = cn.nn.Dropout2d(0.5, inplace=True)
    z = cn.ones(4, 6, 3, 3)
    assert m(z) is z
