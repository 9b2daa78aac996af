"""The model zoo: torchvision's parameter counts and state_dict keys, numerical agreement
with torch.nn twins (ResNet-18 for small inputs, LeNet-5, the Inception module), and a
forward/backward pass through every model."""

import numpy as np
import pytest

import convnet as cn
import convnet.models as M
from convnet import nn
from tests.helpers import assert_close, torch_or_skip

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@pytest.fixture
def no_init(monkeypatch):
    """Skip the random fills while building the big models whose sizes alone are checked
    (VGG's 138M draws take seconds): the parameters stay uninitialised."""
    monkeypatch.setattr(nn.init, "uniform_", lambda t, *a, **k: t)
    monkeypatch.setattr(nn.init, "normal_", lambda t, *a, **k: t)


# --------------------------------------------------------------------------- sizes and keys

TORCHVISION_COUNTS = {
    "alexnet": 61_100_840, "vgg11": 132_863_336, "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240, "googlenet": 6_624_904, "resnet18": 11_689_512,
    "resnet34": 21_797_672, "resnet50": 25_557_032,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_COUNTS))
def test_parameter_counts_match_torchvision(name, no_init):
    model = M.get_model(name)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_COUNTS[name]


def test_lenet5_layers_follow_the_course_table():
    model = M.lenet5()
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {
        "features.0.weight": (6, 1, 5, 5), "features.0.bias": (6,),         # C1
        "features.3.weight": (16, 6, 5, 5), "features.3.bias": (16,),       # C3
        "features.6.weight": (120, 16, 5, 5), "features.6.bias": (120,),    # C5
        "classifier.0.weight": (84, 120), "classifier.0.bias": (84,),       # F6
        "classifier.2.weight": (10, 84), "classifier.2.bias": (10,),        # output
    }
    assert model.num_parameters() == 61_706
    x = cn.tensor(np.zeros((1, 1, 28, 28), np.float32))
    sizes = []
    for layer in model.features:
        x = layer(x)
        sizes.append(x.shape[1:])
    # C1 6@28x28, S2 6@14x14, C3 16@10x10, S4 16@5x5, C5 120@1x1
    assert [sizes[i] for i in (0, 2, 3, 5, 6)] == [(6, 28, 28), (6, 14, 14), (16, 10, 10),
                                                   (16, 5, 5), (120, 1, 1)]
    assert isinstance(model.features[1], nn.Tanh) and isinstance(model.features[2], nn.AvgPool2d)
    relu_max = M.lenet5(activation="relu", pooling="max")
    assert isinstance(relu_max.features[1], nn.ReLU)
    assert isinstance(relu_max.features[2], nn.MaxPool2d)
    with pytest.raises(ValueError, match="28"):
        model(cn.tensor(np.zeros((1, 1, 32, 32), np.float32)))


def resnet18_keys():
    keys = ["conv1.weight"] + [f"bn1.{k}" for k in BN_KEYS]
    for stage in range(1, 5):
        for block in range(2):
            p = f"layer{stage}.{block}"
            for i in (1, 2):
                keys += [f"{p}.conv{i}.weight"] + [f"{p}.bn{i}.{k}" for k in BN_KEYS]
            if stage > 1 and block == 0:
                keys += [f"{p}.downsample.0.weight"] + [f"{p}.downsample.1.{k}" for k in BN_KEYS]
    return keys + ["fc.weight", "fc.bias"]


def test_resnet18_state_dict_keys_are_torchvision():
    assert list(M.resnet18().state_dict()) == resnet18_keys()
    small = M.resnet18(num_classes=10, in_channels=1, small_input=True).state_dict()
    assert list(small) == resnet18_keys()
    assert small["conv1.weight"].shape == (64, 1, 3, 3)
    assert small["fc.weight"].shape == (10, 512)


def test_vgg11_state_dict_keys_are_torchvision(no_init):
    # torchvision's vgg11: convolutions at features.{0,3,6,8,11,13,16,18}, linear layers at
    # classifier.{0,3,6}
    expected = [f"features.{i}.{k}" for i in (0, 3, 6, 8, 11, 13, 16, 18)
                for k in ("weight", "bias")]
    expected += [f"classifier.{i}.{k}" for i in (0, 3, 6) for k in ("weight", "bias")]
    assert list(M.vgg11().state_dict()) == expected
    # vgg11_bn: each convolution is followed by its batch norm
    bn = M.vgg11_bn().state_dict()
    for conv in (0, 4, 8, 11, 15, 18, 22, 25):
        assert bn[f"features.{conv}.weight"].ndim == 4
        assert all(f"features.{conv + 1}.{k}" in bn for k in BN_KEYS)


def test_googlenet_and_resnet50_keys(no_init):
    keys = set(M.googlenet().state_dict())
    for k in ("conv1.conv.weight", "conv1.bn.running_var", "conv3.conv.weight",
              "inception3a.branch1.conv.weight", "inception3a.branch2.1.conv.weight",
              "inception4e.branch3.0.bn.num_batches_tracked", "inception5b.branch4.1.conv.weight",
              "fc.weight", "fc.bias"):
        assert k in keys, k
    assert not any(k.startswith("aux") or k.endswith("conv.bias") for k in keys)
    r50 = M.resnet50().state_dict()
    assert r50["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert r50["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert r50["fc.weight"].shape == (1000, 2048)


def test_alexnet_lrn_variant_and_get_model():
    plain, lrn = M.alexnet(num_classes=10), M.alexnet(num_classes=10, lrn=True)
    kinds = [type(m).__name__ for m in lrn.features]
    assert kinds[:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert kinds[4:8] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert plain.num_parameters() == lrn.num_parameters()
    assert set(M.MODELS) >= {"lenet", "lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19",
                             "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "googlenet",
                             "resnet18", "resnet34", "resnet50"}
    assert isinstance(M.get_model("ResNet18", num_classes=3), M.ResNet)
    with pytest.raises(ValueError, match="unknown name"):
        M.get_model("resnet1000")


# --------------------------------------------------------------------------- against torch.nn


def torch_small_resnet18(num_classes, in_channels):
    """torchvision's BasicBlock ResNet-18 with a 3x3 stride-1 stem (small inputs)."""
    T = torch_or_skip().nn

    class BasicBlock(T.Module):
        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = T.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = T.BatchNorm2d(planes)
            self.relu = T.ReLU()
            self.conv2 = T.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = T.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = T.Sequential(T.Conv2d(inplanes, planes, 1, stride,
                                                        bias=False), T.BatchNorm2d(planes))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class SmallResNet18(T.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = T.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            self.bn1 = T.BatchNorm2d(64)
            self.relu = T.ReLU()
            inplanes = 64
            for i, planes in enumerate((64, 128, 256, 512), start=1):
                stride = 1 if i == 1 else 2
                setattr(self, f"layer{i}", T.Sequential(BasicBlock(inplanes, planes, stride),
                                                        BasicBlock(planes, planes)))
                inplanes = planes
            self.fc = T.Linear(512, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    return SmallResNet18()


def torch_lenet5(activation, pooling):
    T = torch_or_skip().nn
    act = {"tanh": T.Tanh, "relu": T.ReLU}[activation]
    pool = {"avg": T.AvgPool2d, "max": T.MaxPool2d}[pooling]
    features = T.Sequential(T.Conv2d(1, 6, 5, padding=2), act(), pool(2, 2),
                            T.Conv2d(6, 16, 5), act(), pool(2, 2), T.Conv2d(16, 120, 5), act())
    classifier = T.Sequential(T.Linear(120, 84), act(), T.Linear(84, 10))
    return T.Sequential(features, T.Flatten(), classifier)


def torch_inception(cin, c1, c3r, c3, c5r, c5, pp):
    torch = torch_or_skip()
    T = torch.nn

    def basic(i, o, k, p=0):
        return T.Sequential(T.Conv2d(i, o, k, padding=p, bias=False),
                            T.BatchNorm2d(o, eps=0.001), T.ReLU())

    class Inception(T.Module):
        def __init__(self):
            super().__init__()
            self.branch1 = basic(cin, c1, 1)
            self.branch2 = T.Sequential(basic(cin, c3r, 1), basic(c3r, c3, 3, 1))
            self.branch3 = T.Sequential(basic(cin, c5r, 1), basic(c5r, c5, 3, 1))
            self.branch4 = T.Sequential(T.MaxPool2d(3, 1, 1, ceil_mode=True), basic(cin, pp, 1))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x),
                              self.branch4(x)], 1)

    return Inception()


def torch_state(ours, theirs_keys):
    """Our state_dict under the twin's names: ours "x.conv.w"/"x.bn.w" are the twin's
    Sequential "x.0.w"/"x.1.w" (same order), so keys are mapped by position."""
    torch = torch_or_skip()
    mine = ours.state_dict()
    assert len(mine) == len(theirs_keys)
    for a, b in zip(mine, theirs_keys):
        assert a.rsplit(".", 1)[1] == b.rsplit(".", 1)[1], (a, b)
    return {b: torch.tensor(v) for (_, v), b in zip(mine.items(), theirs_keys)}


def compare_float64(ours, theirs, x, train=True):
    """Logits, input and parameter gradients (and batch-norm statistics) in float64."""
    torch = torch_or_skip()
    ours.to(dtype=np.float64).train(train)
    theirs.double().train(train)
    xo = cn.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    y, yt = ours(xo), theirs(xt)
    assert_close(y.numpy(), yt.detach().numpy(), np.float64, "logits")
    dy = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(cn.tensor(dy))
    yt.backward(torch.tensor(dy))
    assert_close(xo.grad.numpy(), xt.grad.numpy(), np.float64, "input grad")
    theirs_params = [p for p in theirs.parameters()]
    ours_params = list(ours.parameters())
    assert len(ours_params) == len(theirs_params)
    gscale = max(float(p.grad.abs().max()) for p in theirs_params)
    for (name, p), q in zip(ours.named_parameters(), theirs_params):
        assert_close(p.grad.numpy(), q.grad.numpy(), np.float64, f"grad {name}",
                     floor=1e-3 * gscale)
    for b, bt in zip(ours.buffers(), theirs.buffers()):
        assert_close(b.numpy(), bt.numpy(), np.float64, "buffer")


def test_resnet18_small_input_matches_torch(torch, rng):
    cn.manual_seed(0)
    ours = M.resnet18(num_classes=10, in_channels=1, small_input=True)
    theirs = torch_small_resnet18(10, 1)
    theirs.load_state_dict(torch_state(ours, list(theirs.state_dict())))
    x = rng.standard_normal((2, 1, 28, 28))
    compare_float64(ours, theirs, x, train=True)
    with cn.no_grad(), torch.no_grad():  # eval mode runs on the updated running statistics
        y = ours.eval()(cn.tensor(x)).numpy()
        yt = theirs.eval()(torch.tensor(x)).numpy()
    assert_close(y, yt, np.float64, "eval logits")


@pytest.mark.parametrize("activation,pooling", [("tanh", "avg"), ("relu", "max")])
def test_lenet5_matches_torch(activation, pooling, rng):
    ours = M.lenet5(activation=activation, pooling=pooling)
    theirs = torch_lenet5(activation, pooling)
    theirs.load_state_dict(torch_state(ours, list(theirs.state_dict())))
    compare_float64(ours, theirs, rng.standard_normal((3, 1, 28, 28)))


@pytest.mark.parametrize("train", [True, False])
def test_inception_module_matches_torch(train, rng):
    config = (10, 4, 3, 5, 2, 3, 6)
    ours, theirs = M.Inception(*config), torch_inception(*config)
    for m in ours.modules():  # non-trivial batch-norm parameters and statistics
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.standard_normal(c)
            m.running_mean.data[...] = rng.standard_normal(c) * 0.1
            m.running_var.data[...] = rng.uniform(0.5, 1.5, c)
    theirs.load_state_dict(torch_state(ours, list(theirs.state_dict())))
    x = rng.standard_normal((2, 10, 7, 6))
    compare_float64(ours, theirs, x, train)
    assert ours(cn.tensor(x)).shape == (2, 4 + 5 + 3 + 6, 7, 6)


# --------------------------------------------------------------------------- every model trains


def forward_backward(model, shape, num_classes=10):
    x = cn.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    y = model.train()(x)
    assert y.shape == (shape[0], num_classes)
    assert np.all(np.isfinite(y.numpy()))
    loss = cn.functional.cross_entropy(y, np.arange(shape[0]) % num_classes)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert p.grad.shape == p.shape, name
        assert np.all(np.isfinite(p.grad.numpy())), f"{name}: non-finite gradient"
    assert any(float(np.abs(p.grad.numpy()).max()) > 0 for p in model.parameters())


@pytest.mark.parametrize("name,kwargs,shape", [
    ("lenet", {"in_channels": 1}, (2, 1, 28, 28)),
    ("lenet5", {"activation": "relu", "pooling": "max"}, (2, 1, 28, 28)),
    ("alexnet", {}, (2, 3, 63, 63)),                        # AlexNet's minimum input
    ("alexnet", {"lrn": True, "in_channels": 1}, (2, 1, 70, 66)),
    ("vgg11", {}, (2, 3, 32, 32)),
    ("vgg13_bn", {"in_channels": 1}, (2, 1, 32, 32)),
    ("googlenet", {}, (2, 3, 32, 32)),
    ("googlenet", {"in_channels": 1}, (2, 1, 28, 28)),
    ("resnet18", {"in_channels": 1, "small_input": True}, (2, 1, 28, 28)),
    ("resnet34", {"in_channels": 1, "small_input": True}, (2, 1, 28, 28)),
    ("resnet50", {"in_channels": 1, "small_input": True}, (2, 1, 28, 28)),
    ("resnet18", {}, (2, 3, 32, 32)),
])
def test_forward_backward(name, kwargs, shape):
    cn.manual_seed(0)
    forward_backward(M.get_model(name, num_classes=10, **kwargs), shape)


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "vgg11_bn", "vgg16_bn", "vgg19_bn"])
def test_forward_backward_other_vggs(name, monkeypatch):
    # The depth is only the configuration list; so that every variant fits the time budget,
    # a cheap fill replaces the initialisation's 120M random draws: a fixed random vector
    # repeated cyclically (a prime period, so no two rows or filters coincide), He-scaled.
    base = np.random.default_rng(0).standard_normal(1_000_003).astype(np.float32)

    def fill(t, *args, **kwargs):
        if t.ndim == 1:
            t.data = np.zeros(t.shape, np.float32)
        else:
            t.data = np.resize(base, t.shape) * np.float32(np.sqrt(2 / np.prod(t.shape[1:])))
        return t
    monkeypatch.setattr(nn.init, "uniform_", fill)
    monkeypatch.setattr(nn.init, "normal_", fill)
    forward_backward(M.get_model(name, num_classes=10), (2, 3, 32, 32))


def test_resnet20_is_the_small_cifar_resnet():
    m = M.resnet20(num_classes=10, in_channels=1)
    # He et al.'s ResNet-20 has 0.27M parameters (3x3 stem, 16/32/64 channels, projection
    # shortcuts with batch norm here, so a little above the option-A count)
    assert 0.26e6 < m.num_parameters() < 0.28e6
    assert [n for n, _ in m.named_children()][:6] == ["conv1", "bn1", "relu", "maxpool",
                                                       "layer1", "layer2"]
    assert not hasattr(m, "layer4")
    x = cn.randn(2, 1, 28, 28, requires_grad=True)
    out = m(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in m.parameters())
    with pytest.raises(ValueError, match="widths"):
        M.ResNet(M.BasicBlock, [1, 1], widths=(8, 16, 32))
