"""Fusion in the framework: F.conv2d_act / F.linear_act against PyTorch (values, gradients,
float64 finite differences), nn.Sequential's fused patterns against the same layers run one
by one, batch norm folding in eval mode, and PyTorch's fuse_*_bn_eval utilities."""

import copy

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
import convnet.nn as nn
from tests.helpers import assert_close, check_op, torch_or_skip

FUSABLE = [("relu", None), ("leaky_relu", 0.1), ("leaky_relu", 0.0), ("tanh", None),
           ("sigmoid", None), ("elu", 0.7), ("selu", None)]


def _torch_act(kind, alpha):
    torch = torch_or_skip()
    tf = torch.nn.functional
    return {
        "relu": tf.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "selu": tf.selu,
        "leaky_relu": lambda t: tf.leaky_relu(t, alpha),
        "elu": lambda t: tf.elu(t, alpha),
    }[kind]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,alpha", FUSABLE)
def test_conv2d_act_against_torch(kind, alpha, dtype):
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((5, 3, 3, 2))
    b = rng.standard_normal(5)
    act = _torch_act(kind, alpha)
    check_op(lambda x, w, b: F.conv2d_act(x, w, b, (2, 1), 1, 1, kind, alpha),
             lambda x, w, b: act(torch.nn.functional.conv2d(x, w, b, (2, 1), 1)),
             [x, w, b], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,alpha", FUSABLE)
def test_linear_act_against_torch(kind, alpha, dtype):
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9))  # leading dimensions, as F.linear takes
    w = rng.standard_normal((4, 9)) / 3
    b = rng.standard_normal(4)
    act = _torch_act(kind, alpha)
    check_op(lambda x, w, b: F.linear_act(x, w, b, kind, alpha),
             lambda x, w, b: act(torch.nn.functional.linear(x, w, b)), [x, w, b], dtype)


def test_fused_ops_without_bias_against_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    check_op(lambda x, w: F.conv2d_act(x, w, None, 1, "same", 1, "tanh"),
             lambda x, w: torch.tanh(torch.nn.functional.conv2d(x, w, None, 1, "same")),
             [x, w], np.float64)
    x, w = rng.standard_normal((6, 4)), rng.standard_normal((2, 4))
    check_op(lambda x, w: F.linear_act(x, w, None, "sigmoid"),
             lambda x, w: torch.sigmoid(torch.nn.functional.linear(x, w)), [x, w], np.float64)


@pytest.mark.parametrize("kind,alpha", [("gelu", None), ("leaky_relu", -0.5), ("elu", -1.0),
                                        ("softmax", None)])
def test_activations_whose_output_hides_the_input_are_refused(kind, alpha):
    x, w = cn.ones(1, 1, 3, 3), cn.ones(1, 1, 1, 1)
    with pytest.raises(ValueError, match="activation"):
        F.conv2d_act(x, w, None, activation=kind, alpha=alpha)
    with pytest.raises(ValueError, match="activation"):
        F.linear_act(cn.ones(2, 3), cn.ones(4, 3), None, kind, alpha)


def test_changing_the_fused_output_in_place_fails_backward_as_pytorch():
    w = cn.tensor(np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
                  requires_grad=True)
    for fused in (lambda: F.linear_act(cn.ones(2, 4), w, None, "relu"),
                  lambda: F.conv2d_act(cn.ones(1, 4, 2, 2), w.reshape(3, 4, 1, 1), None)):
        y = fused()
        y.sub_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


# --------------------------------------------------------------------------- Sequential


def _one_by_one(model, x):
    for m in model:
        x = m(x)
    return x


def _run(model, x_np, fused):
    """Output, input gradient and parameter gradients of `model`, fused or layer by layer."""
    model.zero_grad()
    x = cn.tensor(x_np, requires_grad=True)
    y = model(x) if fused else _one_by_one(model, x)
    dy = np.random.default_rng(9).standard_normal(y.shape).astype(x_np.dtype)
    y.backward(cn.tensor(dy))
    return y, x.grad.numpy(), [p.grad.numpy().copy() for p in model.parameters()]


def _net(dtype=np.float32):
    cn.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, dtype=dtype), nn.BatchNorm2d(8, dtype=dtype),
        nn.ReLU(inplace=True), nn.Conv2d(8, 6, 3, stride=2, dtype=dtype), nn.Tanh(),
        nn.Conv2d(6, 4, 1, bias=False, dtype=dtype), nn.LeakyReLU(0.2), nn.Flatten(),
        nn.Linear(36, 10, dtype=dtype), nn.SELU(), nn.Linear(10, 7, dtype=dtype),
        nn.Sigmoid())


def _with_statistics(model):
    rng = np.random.default_rng(7)
    bn = model[1]
    bn.running_mean._data[...] = rng.standard_normal(8)
    bn.running_var._data[...] = rng.uniform(0.5, 2.0, 8)
    bn.weight._data[...] = rng.uniform(0.5, 1.5, 8)
    bn.bias._data[...] = rng.standard_normal(8)
    return model


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_fused_equals_layer_by_layer(training, dtype):
    model = _with_statistics(_net(dtype)).train(training)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(dtype)
    stats = [b.numpy().copy() for b in model[1].buffers()]
    y0, gx0, gp0 = _run(model, x, fused=False)
    stats_unfused = [b.numpy().copy() for b in model[1].buffers()]
    for b, s in zip(model[1].buffers(), stats):
        b._data[...] = s
    y1, gx1, gp1 = _run(model, x, fused=True)
    assert_close(y1.numpy(), y0.numpy(), dtype, "output")
    assert_close(gx1, gx0, dtype, "input gradient")
    for i, (a, b) in enumerate(zip(gp1, gp0)):
        # (in training, batch norm cancels the first convolution's bias: its gradient is 0
        # up to rounding, measured against the scale of the others)
        assert_close(a, b, dtype, f"gradient of parameter {i}", floor=1e-2)
    # batch norm's running statistics move exactly as unfused (in training only)
    for b, s in zip(model[1].buffers(), stats_unfused):
        np.testing.assert_array_equal(b.numpy(), s)
    # the patterns did run fused: the last op is the fused linear + sigmoid
    assert type(y1._ctx).__name__ == "LinearAct"


def test_sequential_in_eval_folds_batch_norm_as_torch_computes_it():
    torch = torch_or_skip()
    model = _with_statistics(_net(np.float64)).eval()
    tmodel = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 6, 3, stride=2), torch.nn.Tanh(), torch.nn.Conv2d(6, 4, 1, bias=False),
        torch.nn.LeakyReLU(0.2), torch.nn.Flatten(), torch.nn.Linear(36, 10), torch.nn.SELU(),
        torch.nn.Linear(10, 7), torch.nn.Sigmoid()).double().eval()
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in model.state_dict().items()})
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8))
    xt = torch.tensor(x, requires_grad=True)
    yt = tmodel(xt)
    xc = cn.tensor(x, requires_grad=True)
    y = model(xc)
    assert_close(y.numpy(), yt.detach().numpy(), np.float64, "output")
    dy = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(cn.tensor(dy))
    yt.backward(torch.tensor(dy))
    assert_close(xc.grad.numpy(), xt.grad.numpy(), np.float64, "input gradient")
    for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
        assert_close(p.grad.numpy(), tp.grad.numpy(), np.float64, f"gradient of {name}")
    # folding reads the parameters and statistics, never writes them
    after = model.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k].numpy(), v, err_msg=k)


def test_eval_folding_gradient_by_finite_differences():
    model = _with_statistics(_net(np.float64)).eval()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 8))
    dy = rng.standard_normal((2, 7))
    model.zero_grad()
    model(cn.tensor(x)).backward(cn.tensor(dy))
    for p in (model[0].weight, model[1].weight, model[1].bias):
        v = rng.standard_normal(p.shape)
        base = p.numpy().copy()

        def loss(values, p=p):
            p._data[...] = values
            with cn.no_grad():
                return float(np.sum(model(cn.tensor(x)).numpy() * dy))

        eps = 1e-6
        numeric = (loss(base + eps * v) - loss(base - eps * v)) / (2 * eps)
        p._data[...] = base
        assert float(np.sum(p.grad.numpy() * v)) == pytest.approx(numeric, rel=1e-6)


def test_hooks_and_subclasses_turn_fusion_off():
    model = _net().eval()
    x = cn.tensor(np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32))
    seen = {}
    # a hook on the convolution sees the raw convolution, as unfused
    h = model[0].register_forward_hook(lambda m, a, out: seen.__setitem__("conv", out.numpy()))
    y = model(x)
    h.remove()
    expected_conv = F.conv2d(x, model[0].weight, model[0].bias, 1, 1).numpy()
    np.testing.assert_array_equal(seen["conv"], expected_conv)
    assert_close(y.numpy(), _one_by_one(model, x).numpy(), np.float32, "with a conv hook")
    # a hook on the activation that changes its output is honoured
    h = model[4].register_forward_hook(lambda m, a, out: out * 0)
    np.testing.assert_array_equal(nn.Sequential(*list(model)[:5])(x).numpy(), 0)
    h.remove()
    # a subclass with its own forward runs its forward
    class Doubled(nn.ReLU):
        def forward(self, x):
            return super().forward(x) * 2

    seq = nn.Sequential(nn.Linear(4, 3), Doubled())
    xs = cn.ones(2, 4)
    np.testing.assert_array_equal(seq(xs).numpy(), 2 * F.relu(seq[0](xs)).numpy())


def test_unfusable_activations_in_a_sequential_run_unfused():
    cn.manual_seed(1)
    seq = nn.Sequential(nn.Linear(5, 4), nn.LeakyReLU(-0.3), nn.Linear(4, 3), nn.GELU())
    x = cn.tensor(np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32))
    np.testing.assert_array_equal(seq(x).numpy(), _one_by_one(seq, x).numpy())


# --------------------------------------------------------------------------- utilities


def test_fuse_conv_bn_eval_matches_torch():
    torch = torch_or_skip()
    from convnet.nn.utils.fusion import fuse_conv_bn_eval
    from torch.nn.utils.fusion import fuse_conv_bn_eval as torch_fuse

    for bias in (True, False):
        model = _with_statistics(_net(np.float64)).eval()
        model[0] = nn.Conv2d(3, 8, 3, padding=1, bias=bias, dtype=np.float64).eval()
        tconv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=bias).double().eval()
        tbn = torch.nn.BatchNorm2d(8).double().eval()
        tconv.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                               for k, v in model[0].state_dict().items()})
        tbn.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                             for k, v in model[1].state_dict().items()})
        fused, tfused = fuse_conv_bn_eval(model[0], model[1]), torch_fuse(tconv, tbn)
        assert fused is not model[0] and model[0].weight is not fused.weight
        assert_close(fused.weight.numpy(), tfused.weight.detach().numpy(), np.float64, "w")
        assert_close(fused.bias.numpy(), tfused.bias.detach().numpy(), np.float64, "b")
        assert fused.bias.requires_grad == tfused.bias.requires_grad
        assert isinstance(fused.weight, nn.Parameter)
    model[1].train()
    with pytest.raises(AssertionError, match="eval"):  # PyTorch's error
        fuse_conv_bn_eval(model[0], model[1])


def test_fuse_linear_bn_eval_matches_torch():
    torch = torch_or_skip()
    from torch.nn.utils.fusion import fuse_linear_bn_eval as torch_fuse

    cn.manual_seed(2)
    lin, bn = nn.Linear(5, 4, dtype=np.float64), nn.BatchNorm1d(4, dtype=np.float64)
    bn.running_mean._data[...] = [0.5, -1, 2, 0]
    bn.running_var._data[...] = [1.5, 0.5, 2, 1]
    lin.eval(), bn.eval()
    tlin, tbn = torch.nn.Linear(5, 4).double().eval(), torch.nn.BatchNorm1d(4).double().eval()
    tlin.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                          for k, v in lin.state_dict().items()})
    tbn.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in bn.state_dict().items()})
    fused, tfused = nn.utils.fuse_linear_bn_eval(lin, bn), torch_fuse(tlin, tbn)
    assert_close(fused.weight.numpy(), tfused.weight.detach().numpy(), np.float64, "w")
    assert_close(fused.bias.numpy(), tfused.bias.detach().numpy(), np.float64, "b")
    x = cn.tensor(np.random.default_rng(0).standard_normal((3, 5)))
    assert_close(fused(x).numpy(), bn(lin(x)).numpy(), np.float64, "fused layer")
    with pytest.raises(ValueError, match="features"):
        nn.utils.fuse_linear_bn_eval(lin, nn.BatchNorm1d(3, dtype=np.float64).eval())


def test_deepcopy_of_a_fused_model_and_state_dict_keys_unchanged():
    model = _net()
    keys = list(model.state_dict())
    model(cn.ones(1, 3, 8, 8))
    clone = copy.deepcopy(model)
    assert list(clone.state_dict()) == keys == list(model.state_dict())


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("build", ["resnet18", "resnet50", "lenet5"])
def test_zoo_models_fused_equal_unfused(monkeypatch, build, training):
    """ResNet chains conv-bn-relu and LeNet's Sequentials fuse; with fusion switched off
    (every pattern refused) the same model gives the same outputs and gradients."""
    import convnet.nn.fusion as fusion
    from convnet import models

    cn.manual_seed(3)
    if build == "lenet5":
        model = models.LeNet5(num_classes=10)
        x_np = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    else:
        from convnet.models import resnet

        block = resnet.BasicBlock if build == "resnet18" else resnet.Bottleneck
        model = resnet.ResNet(block, [2, 1, 1, 1], 5, 3, True, widths=(8, 8, 16, 16))
        x_np = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    model.train(training)
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    fused = _run(model, x_np, fused=True)
    model.load_state_dict({k: cn.tensor(v) for k, v in state.items()})
    monkeypatch.setattr(fusion, "_fused_step", lambda modules, i, x: (None, 0))
    plain = _run(model, x_np, fused=True)
    assert_close(fused[0].numpy(), plain[0].numpy(), np.float32, "output")
    assert_close(fused[1], plain[1], np.float32, "input gradient")
    for i, (a, b) in enumerate(zip(fused[2], plain[2])):
        assert_close(a, b, np.float32, f"gradient of parameter {i}", floor=1e-2)
