"""GAN models: shapes, gradients reaching every parameter, bad input, instance norm against
PyTorch, and the two halves of adversarial training doing what they should."""

import numpy as np
import pytest

import convnet as cn
from convnet import nn
from convnet.examples.gan import discriminator_step, generator_step
from convnet.models.gan import (
    CycleGANGenerator,
    DCGANDiscriminator,
    DCGANGenerator,
    DenseDiscriminator,
    DenseGenerator,
    InstanceNorm2d,
    PatchDiscriminator,
    ResidualBlock,
    dcgan_init_,
    gan_pair,
)
from tests.helpers import torch_or_skip


def _images(n, seed=0):
    return cn.tensor(np.random.default_rng(seed).uniform(-1, 1, (n, 1, 28, 28))
                     .astype(np.float32))


def _codings(n, dim, seed=0):
    return cn.tensor(np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32))


def _all_grads_finite_nonzero(module):
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        g = p.grad.numpy()
        assert np.isfinite(g).all(), name
        assert np.abs(g).max() > 0, name


@pytest.mark.parametrize("gen, disc, dim", [
    (lambda: DenseGenerator(latent_dim=8, hidden=(16, 32)),
     lambda: DenseDiscriminator((32, 16)), 8),
    (lambda: DenseGenerator(latent_dim=8, hidden=(16,), batch_norm=True),
     lambda: DenseDiscriminator((16,), dropout=0.3), 8),
    (lambda: DCGANGenerator(latent_dim=8, width=4), lambda: DCGANDiscriminator(width=4), 8),
], ids=["dense", "dense-bn-dropout", "dcgan"])
def test_generator_discriminator_shapes_and_backward(gen, disc, dim):
    cn.manual_seed(0)
    g, d = gen(), disc()
    images = g(_codings(3, dim))
    assert images.shape == (3, 1, 28, 28)
    assert images.numpy().min() >= -1 and images.numpy().max() <= 1   # tanh output
    logits = d(images)
    assert logits.shape == (3, 1)
    (logits * cn.tensor(np.array([[1.0], [-2.0], [0.5]], np.float32))).sum().backward()
    _all_grads_finite_nonzero(g)
    _all_grads_finite_nonzero(d)


def test_cyclegan_generator_and_patch_discriminator_shapes_and_backward():
    cn.manual_seed(0)
    g, d = CycleGANGenerator(width=4, n_blocks=1), PatchDiscriminator(width=4)
    x = _images(2)
    y = g(x)
    assert y.shape == (2, 1, 28, 28)
    patches = d(y)
    assert patches.shape == (2, 1, 7, 7)   # one logit per overlapping patch
    weights = cn.tensor(np.random.default_rng(1).standard_normal((2, 1, 7, 7)).astype(np.float32))
    (patches * weights).sum().backward()
    _all_grads_finite_nonzero(g)
    _all_grads_finite_nonzero(d)


def test_dcgan_parameter_counts_follow_the_layers():
    g, d = DCGANGenerator(latent_dim=10, width=4), DCGANDiscriminator(width=4)
    # Linear 10 -> 8*7*7 (no bias), BN(8), ConvT 8->4 4x4 (no bias), BN(4), ConvT 4->1 4x4 + b
    assert g.num_parameters() == 10 * 392 + 16 + 8 * 4 * 16 + 8 + 4 * 16 + 1
    # Conv 1->4 4x4 + b, Conv 4->8 4x4 (no bias), BN(8), Linear 392 -> 1
    assert d.num_parameters() == 1 * 4 * 16 + 4 + 4 * 8 * 16 + 16 + 392 + 1


def test_dcgan_init_draws_small_weights():
    cn.manual_seed(0)
    g = dcgan_init_(DCGANGenerator(latent_dim=16, width=8), std=0.02)
    w = g.project[0].weight.numpy()
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002


@pytest.mark.parametrize("module, bad", [
    (lambda: DenseGenerator(latent_dim=8), np.zeros((2, 9), np.float32)),
    (lambda: DCGANGenerator(latent_dim=8), np.zeros((2, 8, 1), np.float32)),
    (lambda: DenseDiscriminator(), np.zeros((2, 1, 32, 32), np.float32)),
    (lambda: DCGANDiscriminator(), np.zeros((2, 3, 28, 28), np.float32)),
    (lambda: CycleGANGenerator(width=2, n_blocks=1), np.zeros((2, 28, 28), np.float32)),
    (lambda: PatchDiscriminator(width=2), np.zeros((2, 1, 27, 28), np.float32)),
    (lambda: InstanceNorm2d(3), np.zeros((2, 4, 5, 5), np.float32)),
])
def test_bad_input_is_a_value_error(module, bad):
    with pytest.raises(ValueError, match="expected"):
        module()(cn.tensor(bad))


def test_gan_pair_names():
    import convnet.models

    assert convnet.models.gan_pair is gan_pair   # exported with the other models
    g, d = gan_pair("gan", latent_dim=5)
    assert isinstance(g, DenseGenerator) and isinstance(d, DenseDiscriminator)
    with pytest.raises(ValueError, match="model"):
        gan_pair("stylegan")


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 1, 7, 7), (3, 2, 1, 6)])
def test_instance_norm_matches_pytorch(shape):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 3 + 1
    g = rng.standard_normal(shape)
    norm = InstanceNorm2d(shape[1]).double()
    norm.norm.weight.data[:] = rng.standard_normal(shape[1])
    norm.norm.bias.data[:] = rng.standard_normal(shape[1])
    xt = cn.tensor(x, requires_grad=True)
    y = norm(xt)
    (y * cn.tensor(g)).sum().backward()

    ref = torch.nn.InstanceNorm2d(shape[1], affine=True, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(norm.norm.weight.numpy()))
        ref.bias.copy_(torch.tensor(norm.norm.bias.numpy()))
    x_ref = torch.tensor(x, requires_grad=True)
    y_ref = ref(x_ref)
    (y_ref * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(xt.grad.numpy(), x_ref.grad.numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(norm.norm.weight.grad.numpy(), ref.weight.grad.numpy(),
                               rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(norm.norm.bias.grad.numpy(), ref.bias.grad.numpy(),
                               rtol=1e-7, atol=1e-9)


def test_residual_block_is_identity_plus_body():
    cn.manual_seed(0)
    block = ResidualBlock(3)
    x = cn.tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32))
    np.testing.assert_allclose(block(x).numpy(), x.numpy() + block.body(x).numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- training halves


def _fixed_setup():
    cn.manual_seed(0)
    g = DenseGenerator(latent_dim=8, hidden=(32,))
    d = DenseDiscriminator(hidden=(32,))
    # "real" images: a fixed bright square, unlike anything the untrained generator draws
    real = -np.ones((16, 1, 28, 28), np.float32)
    real[:, :, 8:20, 8:20] = 1.0
    return g, d, cn.tensor(real), _codings(16, 8, seed=1)


def _d_loss(g, d, real, z):
    from convnet.examples.gan import bce_logits

    with cn.no_grad():
        return (bce_logits(d(real), 1.0) + bce_logits(d(g(z)), 0.0)).item()


def test_training_only_the_discriminator_lowers_its_loss():
    g, d, real, z = _fixed_setup()
    g_before = {k: np.array(v) for k, v in g.state_dict().items()}
    opt_d = cn.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    before = _d_loss(g, d, real, z)
    for _ in range(40):
        discriminator_step(g, d, opt_d, real, z, real_target=1.0)
    after = _d_loss(g, d, real, z)
    assert before > 1.0          # about 2 ln 2 for an untrained discriminator
    assert after < 0.25 * before
    for k, v in g.state_dict().items():   # the generator is not touched
        np.testing.assert_array_equal(v, g_before[k])


def test_a_generator_update_moves_towards_fooling_a_fixed_discriminator():
    g, d, real, z = _fixed_setup()
    opt_d = cn.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(40):   # a discriminator that tells the square from the generator's output
        discriminator_step(g, d, opt_d, real, z, real_target=1.0)
    d_before = {k: np.array(v) for k, v in d.state_dict().items()}

    def fooled():
        with cn.no_grad():
            return float(cn.functional.sigmoid(d(g(z))).numpy().mean())

    start = fooled()
    opt_g = cn.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    first = generator_step(g, d, opt_g, z)
    after_one = fooled()
    for _ in range(20):
        last = generator_step(g, d, opt_g, z)
    assert start < 0.3
    assert after_one > start               # a single step already helps
    assert fooled() > start + 0.3          # and a few steps fool D much more often
    assert last < 0.5 * first
    for k, v in d.state_dict().items():    # the discriminator is fixed by generator steps
        np.testing.assert_array_equal(v, d_before[k])
    assert all(p.grad is None for p in d.parameters())   # and left without stale gradients


def test_dcgan_discriminator_in_eval_mode_is_deterministic():
    cn.manual_seed(0)
    d = DCGANDiscriminator(width=4)
    x = _images(4)
    d(x)   # updates running stats
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), d(x).numpy())
    assert isinstance(d.net[3], nn.BatchNorm2d)
