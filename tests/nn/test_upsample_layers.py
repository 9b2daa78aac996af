"""ConvTranspose2d and Upsample modules against torch.nn with the same weights."""

import numpy as np
import pytest

import convnet as cn
from tests.nn.test_layers import compare

nn = cn.nn


@pytest.mark.parametrize("args,kwargs", [
    ((3, 5, 4), {"stride": 2, "padding": 1}),
    ((4, 2, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((2, 3, (3, 2)), {"stride": (3, 1), "padding": (1, 0), "dilation": (1, 2), "bias": False}),
])
def test_conv_transpose2d_matches_torch(torch, args, kwargs, dtype, rng):
    cn.manual_seed(0)
    ours, theirs = nn.ConvTranspose2d(*args, **kwargs), torch.nn.ConvTranspose2d(*args, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert tuple(ours.state_dict()[k].shape) == tuple(v.shape), k
    ours.to(dtype=dtype)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    compare(ours, theirs, rng.standard_normal((2, args[0], 5, 6)), dtype)


def test_conv_transpose2d_init_bounds_follow_torch():
    """PyTorch's kaiming_uniform(a=sqrt(5)) reads the fan-in off dim 1 (out_channels):
    weights and bias within 1/sqrt(out_channels * kH * kW), filling that range."""
    cn.manual_seed(0)
    m = nn.ConvTranspose2d(64, 8, 4)
    bound = 1 / np.sqrt(8 * 16)
    for p in (m.weight.numpy(), m.bias.numpy()):
        assert np.abs(p).max() <= bound
    assert np.abs(m.weight.numpy()).max() > 0.95 * bound


def test_generator_stack_shapes():
    g = nn.Sequential(nn.ConvTranspose2d(16, 8, 7), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.LeakyReLU(0.2),
                      nn.ConvTranspose2d(4, 1, 4, 2, 1), nn.Tanh())
    z = cn.tensor(np.random.default_rng(0).standard_normal((3, 16, 1, 1)).astype(np.float32),
                  requires_grad=True)
    y = g(z)
    assert y.shape == (3, 1, 28, 28)
    y.sum().backward()
    assert z.grad.shape == z.shape and np.isfinite(z.grad.numpy()).all()


@pytest.mark.parametrize("kwargs", [{"scale_factor": 2}, {"size": (9, 7), "mode": "bilinear"},
                                    {"scale_factor": 1.5, "mode": "bilinear",
                                     "align_corners": True}])
def test_upsample_matches_torch(torch, kwargs, dtype, rng):
    ours, theirs = nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs)
    x = rng.standard_normal((2, 3, 4, 5))
    xo = cn.tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x.astype(dtype).astype(np.float64), requires_grad=True)
    y, yt = ours(xo), theirs(xt)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    assert repr(ours).startswith("Upsample(")


def test_upsampling_aliases(torch, rng):
    x = rng.standard_normal((1, 2, 3, 3))
    for ours, theirs in ((nn.UpsamplingNearest2d(scale_factor=2),
                          torch.nn.UpsamplingNearest2d(scale_factor=2)),
                         (nn.UpsamplingBilinear2d(size=(5, 8)),
                          torch.nn.UpsamplingBilinear2d(size=(5, 8)))):
        np.testing.assert_allclose(ours(cn.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(),
                                   rtol=1e-12, atol=1e-12)


def test_upsample_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        nn.Upsample()
    with pytest.raises(ValueError, match="mode"):
        nn.Upsample(scale_factor=2, mode="trilinear")


def test_embedding_matches_torch(torch, rng):
    cn.manual_seed(0)
    ours = nn.Embedding(7, 5, padding_idx=2)
    theirs = torch.nn.Embedding(7, 5, padding_idx=2).double()
    assert np.all(ours.weight.numpy()[2] == 0)
    theirs.load_state_dict({"weight": torch.tensor(ours.weight.numpy().astype(np.float64))})
    idx = np.array([[0, 2, 6], [6, 6, 1]])  # repeated rows must accumulate
    y = ours(cn.tensor(idx))
    yt = theirs(torch.tensor(idx))
    assert y.shape == (2, 3, 5)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-6)
    dy = rng.standard_normal((2, 3, 5))
    y.backward(cn.tensor(dy.astype(np.float32)))
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-6)
    assert np.all(ours.weight.grad.numpy()[2] == 0)


def test_embedding_bad_indices():
    e = nn.Embedding(4, 3)
    with pytest.raises(ValueError, match="indices must be in"):
        e(cn.tensor(np.array([0, 4])))
    with pytest.raises(TypeError, match="integer"):
        e(cn.tensor(np.array([0.0, 1.0], np.float32)))
