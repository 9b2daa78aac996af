"""Autoencoders: forward/backward on small inputs, tied weights, the denoising wrapper's
train/eval behaviour, the VAE's KL and ELBO against independent NumPy formulas, and short
training runs that must beat what a model ignoring its input can reach."""

import numpy as np
import pytest

import convnet as cn
from convnet import functional as F
from convnet.data import load_embedded_sample
from convnet.examples.autoencoder import loader, reconstruction_mse, train
from convnet.examples.vae import evaluate_elbo, vae_loss
from convnet.models import (
    ConvAutoencoder,
    DenoisingAutoencoder,
    DenseAutoencoder,
    TiedLinear,
    VariationalAutoencoder,
)


def images(rng, n=3, shape=(1, 28, 28)):
    return cn.tensor(rng.uniform(0, 1, (n, *shape)).astype(np.float32))


MODELS = {
    "dense": lambda: DenseAutoencoder(hidden=(64,), codings=8),
    "tied": lambda: DenseAutoencoder(hidden=(64, 32), codings=8, tied=True),
    "conv-transpose": lambda: ConvAutoencoder(codings=8),
    "conv-nearest": lambda: ConvAutoencoder(codings=8, upsample="nearest"),
    "conv-bilinear": lambda: ConvAutoencoder(channels=(4, 6, 8), codings=8,
                                             image_shape=(2, 16, 24), upsample="bilinear"),
    "denoising-gaussian": lambda: DenoisingAutoencoder(ConvAutoencoder(codings=8)),
    "denoising-dropout": lambda: DenoisingAutoencoder(DenseAutoencoder(codings=8),
                                                      noise="dropout", p=0.5),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_backward(name, rng):
    cn.manual_seed(0)
    model = MODELS[name]()
    shape = model.autoencoder.image_shape if hasattr(model, "autoencoder") else \
        model.image_shape
    x = images(rng, 3, shape)
    y = model(x)
    assert y.shape == x.shape
    assert 0 <= float(y.numpy().min()) and float(y.numpy().max()) <= 1
    z = model.encode(x)
    assert z.shape == (3, 8)
    assert model.decode(z).shape == x.shape
    F.mse_loss(y, x).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, pname
        assert np.isfinite(p.grad.numpy()).all(), pname
        assert np.abs(p.grad.numpy()).max() > 0, f"{pname}: zero gradient"


def test_tied_weights_are_the_encoders_transposed(rng):
    cn.manual_seed(0)
    tied, free = DenseAutoencoder(codings=16, tied=True), DenseAutoencoder(codings=16)
    n_tied = sum(p.numel() for p in tied.parameters())
    n_free = sum(p.numel() for p in free.parameters())
    weights = sum(p.numel() for n, p in free.decoder.named_parameters() if "weight" in n)
    assert n_tied == n_free - weights  # the decoder keeps only its biases
    assert set(tied.state_dict()) == {k for k in free.state_dict()
                                      if not (k.startswith("decoder") and "weight" in k)}
    first = tied.decoder[0]
    assert isinstance(first, TiedLinear) and first.source is tied.encoder[5]
    z = cn.tensor(rng.standard_normal((4, 16)).astype(np.float32), requires_grad=True)
    out = first(z)
    np.testing.assert_allclose(out.numpy(), z.numpy() @ tied.encoder[5].weight.numpy()
                               + first.bias.numpy(), rtol=1e-5, atol=1e-6)
    # The decoder alone trains the encoder's weights (they are the same numbers).
    tied.decode(z).sum().backward()
    assert np.abs(tied.encoder[5].weight.grad.numpy()).max() > 0
    assert tied.encoder[1].weight.grad is not None


def test_denoising_corrupts_only_in_training(rng):
    cn.manual_seed(0)
    inner = DenseAutoencoder(hidden=(32,), codings=4)
    x = images(rng, 64)
    gauss = DenoisingAutoencoder(inner, noise="gaussian", std=0.5)
    gauss.eval()
    np.testing.assert_array_equal(gauss(x).numpy(), inner(x).numpy())
    gauss.train()
    assert not np.allclose(gauss(x).numpy(), inner(x).numpy())
    noise = gauss.corrupt(x).numpy() - x.numpy()
    assert abs(noise.std() - 0.5) < 0.01 and abs(noise.mean()) < 0.01
    drop = DenoisingAutoencoder(inner, noise="dropout", p=0.3)
    kept = drop.corrupt(x).numpy() != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01
    np.testing.assert_allclose(drop.corrupt(x).numpy()[kept] * 0, 0)
    with pytest.raises(ValueError, match="noise"):
        DenoisingAutoencoder(inner, noise="salt")


def test_vae_terms_match_numpy(rng):
    cn.manual_seed(0)
    vae = VariationalAutoencoder(hidden=(32,), latent=3)
    x = images(rng, 5)
    vae.eval()  # z = mean: deterministic, so the ELBO can be recomputed exactly
    loss = vae.loss(x)
    mean, logvar = (t.numpy().astype(np.float64) for t in vae.encode(x))
    logits = vae.decode_logits(vae.encode(x)[0]).numpy().astype(np.float64)
    xv = x.numpy().astype(np.float64)
    bce = np.maximum(logits, 0) - logits * xv + np.log1p(np.exp(-np.abs(logits)))
    kl = 0.5 * (mean ** 2 + np.exp(logvar) - logvar - 1).sum(axis=1)
    np.testing.assert_allclose(vae.kl_divergence(*vae.encode(x)).numpy(), kl, rtol=1e-5)
    assert float(loss.item()) == pytest.approx(bce.sum() / 5 + kl.mean(), rel=1e-5)


def test_vae_reparameterisation_and_sampling(rng):
    cn.manual_seed(0)
    vae = VariationalAutoencoder(hidden=(32,), latent=2)
    x = images(rng, 4)
    vae.train()
    logits1, mean, logvar = vae(x)
    logits2, _, _ = vae(x)
    assert not np.allclose(logits1.numpy(), logits2.numpy())  # z is sampled in training
    vae.loss(x).backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and np.abs(p.grad.numpy()).max() > 0, name
    s = vae.sample(7)
    assert s.shape == (7, 1, 28, 28)
    assert 0 <= float(s.numpy().min()) and float(s.numpy().max()) <= 1
    vae.eval()
    np.testing.assert_array_equal(vae.reconstruct(x).numpy(), vae.reconstruct(x).numpy())


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        ConvAutoencoder(image_shape=(1, 30, 30))
    with pytest.raises(ValueError, match="upsample"):
        ConvAutoencoder(upsample="pixelshuffle")
    with pytest.raises(ValueError, match="activation"):
        DenseAutoencoder(activation="swish")
    with pytest.raises(ValueError, match="latent"):
        VariationalAutoencoder(latent=0)


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def small_data():
    s = load_embedded_sample()
    (x, y), (xt, yt) = s["train"], s["test"]
    xt, yt = xt[:300], yt[:300]
    mean = x[:1500].astype(np.float64).mean(0) / 255
    xtf = xt.astype(np.float64) / 255
    p = np.clip(mean, 1e-6, 1 - 1e-6)
    # What a model ignoring its input can do at best: predict the mean training image.
    baseline_mse = float(((xtf - mean) ** 2).mean())
    baseline_bce = float(-(xtf * np.log(p) + (1 - xtf) * np.log(1 - p)).sum((1, 2)).mean())
    return (x[:1500], y[:1500]), (xt, yt), baseline_mse, baseline_bce


@pytest.mark.parametrize("name", ["dense", "tied", "conv", "denoising"])
def test_training_lowers_reconstruction_error(name, small_data):
    (x, y), (xt, yt), baseline_mse, _ = small_data
    cn.manual_seed(0)
    model = {"dense": lambda: DenseAutoencoder(),
             "tied": lambda: DenseAutoencoder(tied=True),
             "conv": lambda: ConvAutoencoder(),
             "denoising": lambda: DenoisingAutoencoder(ConvAutoencoder(), std=0.2)}[name]()
    test = loader(xt, yt, 300)
    before = reconstruction_mse(model, test)
    history = train(model, loader(x, y, 25, shuffle=True, seed=0), 2, progress=False,
                    log=lambda s: None)
    after = reconstruction_mse(model, test)
    assert history["loss"][-1] < history["loss"][0]
    assert after < 0.5 * before
    # The mean image scores baseline_mse (about 0.088): the reconstructions must depend on
    # the input to get well under it.
    assert after < 0.75 * baseline_mse, (after, baseline_mse)


def test_vae_training_raises_the_elbo(small_data):
    (x, y), (xt, yt), _, baseline_bce = small_data
    cn.manual_seed(0)
    vae = VariationalAutoencoder()
    test = loader(xt, yt, 300)
    before = -evaluate_elbo(vae, test)[0]
    train(vae, loader(x, y, 25, shuffle=True, seed=0), 2, loss_fn=vae_loss, progress=False,
          log=lambda s: None)
    after, recon, kl = evaluate_elbo(vae, test)
    after = -after
    assert after < 0.7 * before
    # Independent Bernoulli pixels at the mean image cost baseline_bce (about 387 nats) with
    # KL = 0; beating it needs a latent code that carries information (KL > 0).
    assert after < 0.85 * baseline_bce, (after, baseline_bce)
    assert kl > 1.0
