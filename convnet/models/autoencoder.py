"""Autoencoders (the course's chapter on unsupervised feature detectors and generative
models): stacked dense (optionally with tied weights), convolutional, denoising and
variational.

Every model maps images (N, C, H, W) in [0, 1] to reconstructions of the same shape in
[0, 1] (a sigmoid output) and exposes ``encode(x) -> codings`` and ``decode(z) -> images``,
so an encoder can be reused under a classifier (unsupervised pretraining) and a decoder
used as a generator.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import nn
from .. import random as _random
from ..tensor import Tensor

ACTIVATIONS = {"relu": nn.ReLU, "selu": nn.SELU, "elu": nn.ELU, "tanh": nn.Tanh,
               "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def _as_images(shape):
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape: expected (C, H, W), got {shape!r}")
    return shape


class Reshape(nn.Module):
    """Reshape every sample to ``shape`` (the batch axis is kept)."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self):
        return f"shape={self.shape}"


class TiedLinear(nn.Module):
    """The transpose of another Linear layer with a bias of its own: the source maps
    in -> out with ``x W^T + b`` (W of shape (out, in)), this layer maps out -> in with
    ``y W + c``; the decoder half of a tied-weights autoencoder. ``source`` is not
    registered as a sub-module, so its weight is counted (and saved) once, in the encoder,
    and both layers' gradients add up in it."""

    def __init__(self, source: nn.Linear, bias: bool = True):
        super().__init__()
        object.__setattr__(self, "_source", (source,))
        out = source.in_features
        if bias:
            self.bias = nn.Parameter(np.zeros(out, source.weight.dtype))
        else:
            self.register_parameter("bias", None)

    @property
    def source(self) -> nn.Linear:
        return self._source[0]

    def forward(self, x):
        y = x @ self.source.weight
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        s = self.source
        return f"in_features={s.out_features}, out_features={s.in_features} (tied)"


class _EncoderDecoder(nn.Module):
    """An ``encoder`` and a ``decoder`` built by the subclass; forward reconstructs."""

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x))


class DenseAutoencoder(_EncoderDecoder):
    """Stacked (deep) dense autoencoder: image -> hidden... -> codings -> ...hidden -> image.

    ``hidden=(256, 128)`` and ``codings=32`` give 784-256-128-32-128-256-784 for 28x28
    images. ``tied=True`` makes each decoder layer use the transpose of the matching
    encoder layer's weights (half the weights; the decoder keeps its own biases).
    """

    def __init__(self, image_shape=(1, 28, 28), hidden=(256, 128), codings=32,
                 activation="relu", tied=False):
        super().__init__()
        self.image_shape = _as_images(image_shape)
        self.codings, self.tied = int(codings), bool(tied)
        sizes = [math.prod(self.image_shape), *[int(h) for h in hidden], self.codings]
        enc = [nn.Flatten()]
        linears = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            linears.append(nn.Linear(a, b))
            enc.append(linears[-1])
            if i < len(sizes) - 2:
                enc.append(_activation(activation))
        self.encoder = nn.Sequential(*enc)
        dec = []
        back = list(zip(sizes[:0:-1], sizes[-2::-1]))
        for i, ((a, b), src) in enumerate(zip(back, linears[::-1])):
            dec.append(TiedLinear(src) if tied else nn.Linear(a, b))
            dec.append(_activation(activation) if i < len(back) - 1 else nn.Sigmoid())
        dec.append(Reshape(*self.image_shape))
        self.decoder = nn.Sequential(*dec)


class ConvAutoencoder(_EncoderDecoder):
    """Convolutional autoencoder: strided 3x3 convolutions down to a dense codings layer,
    and back up with ``upsample='transpose'`` (ConvTranspose2d, stride 2) or ``'nearest'`` /
    ``'bilinear'`` (Upsample x2 then a 3x3 convolution, which avoids checkerboard
    artefacts). H and W must be divisible by 2 ** len(channels).
    """

    def __init__(self, image_shape=(1, 28, 28), channels=(16, 32), codings=32,
                 upsample="transpose", activation="relu"):
        super().__init__()
        self.image_shape = c, h, w = _as_images(image_shape)
        self.codings = int(codings)
        if upsample not in ("transpose", "nearest", "bilinear"):
            raise ValueError(f"upsample: expected 'transpose', 'nearest' or 'bilinear', got "
                             f"{upsample!r}")
        down = 2 ** len(channels)
        if h % down or w % down:
            raise ValueError(f"image_shape: H and W must be divisible by {down} for "
                             f"{len(channels)} stride-2 layers, got {image_shape!r}")
        self.upsample = upsample
        widths = [c, *[int(k) for k in channels]]
        enc = []
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [nn.Conv2d(a, b, 3, stride=2, padding=1), _activation(activation)]
        inner = (widths[-1], h // down, w // down)
        enc += [nn.Flatten(), nn.Linear(math.prod(inner), self.codings)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Linear(self.codings, math.prod(inner)), _activation(activation),
               Reshape(*inner)]
        pairs = list(zip(widths[:0:-1], widths[-2::-1]))
        for i, (a, b) in enumerate(pairs):
            if upsample == "transpose":
                dec.append(nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1))
            else:
                align = None if upsample == "nearest" else False
                dec += [nn.Upsample(scale_factor=2, mode=upsample, align_corners=align),
                        nn.Conv2d(a, b, 3, padding=1)]
            dec.append(_activation(activation) if i < len(pairs) - 1 else nn.Sigmoid())
        self.decoder = nn.Sequential(*dec)


def _noise_like(x: Tensor) -> Tensor:
    """Standard normal noise with x's shape, dtype and device, from convnet's generator."""
    noise = _random.randn(x.shape, x.dtype)
    return Tensor._wrap(x._xp.asarray(noise), False)


class DenoisingAutoencoder(nn.Module):
    """Wraps an autoencoder and corrupts its input during training only: ``noise='gaussian'``
    adds N(0, std^2) noise, ``noise='dropout'`` zeroes pixels with probability ``p`` (and
    rescales the rest, as Dropout does). The target stays the clean image; in eval mode the
    input passes through untouched."""

    def __init__(self, autoencoder: nn.Module, noise="gaussian", std=0.3, p=0.3):
        super().__init__()
        if noise not in ("gaussian", "dropout"):
            raise ValueError(f"noise: expected 'gaussian' or 'dropout', got {noise!r}")
        if std < 0:
            raise ValueError(f"std: must be >= 0, got {std}")
        if not 0 <= p < 1:
            raise ValueError(f"p: must be in [0, 1), got {p}")
        self.autoencoder = autoencoder
        self.noise, self.std, self.p = noise, float(std), float(p)

    def corrupt(self, x):
        """The noisy version of x (always, whatever the mode): what training feeds in."""
        if self.noise == "gaussian":
            return x + _noise_like(x) * self.std
        return F.dropout(x, self.p, training=True)

    def encode(self, x):
        return self.autoencoder.encode(x)

    def decode(self, z):
        return self.autoencoder.decode(z)

    def forward(self, x):
        return self.autoencoder(self.corrupt(x) if self.training else x)

    def extra_repr(self):
        return f"noise={self.noise!r}, " + (f"std={self.std}" if self.noise == "gaussian"
                                             else f"p={self.p}")


class VariationalAutoencoder(nn.Module):
    """Variational autoencoder (Kingma and Welling) with a Bernoulli decoder.

    The encoder gives the mean and the log-variance of q(z|x), a diagonal Gaussian over
    ``latent`` dimensions; training samples z = mean + exp(logvar / 2) * eps with eps ~
    N(0, I) (the reparameterisation trick, so gradients reach the encoder); the decoder
    gives pixel logits. ``forward(x)`` returns (logits, mean, logvar); :meth:`loss` is the
    negative ELBO per image in nats: binary cross-entropy summed over pixels plus
    KL(q(z|x) || N(0, I)) = -1/2 sum(1 + logvar - mean^2 - exp(logvar)).
    In eval mode z is the mean (deterministic reconstructions).
    """

    def __init__(self, image_shape=(1, 28, 28), hidden=(512, 256), latent=2,
                 activation="relu"):
        super().__init__()
        self.image_shape = _as_images(image_shape)
        self.latent = int(latent)
        if self.latent < 1:
            raise ValueError(f"latent: must be >= 1, got {latent}")
        sizes = [math.prod(self.image_shape), *[int(h) for h in hidden]]
        enc = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [nn.Linear(a, b), _activation(activation)]
        self.encoder = nn.Sequential(*enc)
        self.mean = nn.Linear(sizes[-1], self.latent)
        self.logvar = nn.Linear(sizes[-1], self.latent)
        dec = []
        back = [self.latent, *sizes[:0:-1]]
        for a, b in zip(back[:-1], back[1:]):
            dec += [nn.Linear(a, b), _activation(activation)]
        dec += [nn.Linear(back[-1], sizes[0]), Reshape(*self.image_shape)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x):
        """(mean, logvar) of q(z|x), each (N, latent)."""
        h = self.encoder(x)
        return self.mean(h), self.logvar(h)

    def reparameterize(self, mean, logvar):
        if not self.training:
            return mean
        return mean + (logvar * 0.5).exp() * _noise_like(mean)

    def decode_logits(self, z):
        return self.decoder(z)

    def decode(self, z):
        """Pixel probabilities (N, C, H, W) for codings z (N, latent)."""
        return F.sigmoid(self.decode_logits(z))

    def forward(self, x):
        mean, logvar = self.encode(x)
        return self.decode_logits(self.reparameterize(mean, logvar)), mean, logvar

    def reconstruct(self, x):
        return F.sigmoid(self(x)[0])

    @staticmethod
    def kl_divergence(mean, logvar):
        """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over the latent axis."""
        return ((mean * mean + logvar.exp() - logvar - 1.0) * 0.5).sum(dim=1)

    def loss(self, x, return_parts=False):
        """Negative ELBO averaged over the batch (nats per image); with ``return_parts``
        also the mean reconstruction and KL terms as floats."""
        logits, mean, logvar = self(x)
        n = x.shape[0]
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
        kl = self.kl_divergence(mean, logvar).mean()
        total = recon + kl
        if return_parts:
            return total, float(recon.item()), float(kl.item())
        return total

    def sample(self, n, device=None):
        """``n`` new images: the decoder's pixel probabilities for z ~ N(0, I)."""
        w = self.mean.weight
        z = Tensor._wrap(w._xp.asarray(_random.randn((int(n), self.latent), w.dtype)), False)
        return self.decode(z)


def dense_autoencoder(**kwargs):
    return DenseAutoencoder(**kwargs)


def tied_autoencoder(**kwargs):
    return DenseAutoencoder(tied=True, **kwargs)


def conv_autoencoder(**kwargs):
    return ConvAutoencoder(**kwargs)


def vae(**kwargs):
    return VariationalAutoencoder(**kwargs)


__all__ = ["Reshape", "TiedLinear", "DenseAutoencoder", "ConvAutoencoder",
           "DenoisingAutoencoder", "VariationalAutoencoder", "dense_autoencoder",
           "tied_autoencoder", "conv_autoencoder", "vae"]
