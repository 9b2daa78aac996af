"""Generative adversarial networks for 28x28 grayscale images (Fashion-MNIST), as the
course's chapter on GANs builds them: a dense GAN, a DCGAN (Radford et al. 2016) and the
generators and discriminators of a CycleGAN (Zhu et al. 2017).

Generators map their input to images in [-1, 1] (tanh output), shape (N, 1, 28, 28);
discriminators return logits (a sigmoid or least-squares loss goes on top): (N, 1) for the
dense and DCGAN discriminators, (N, 1, 7, 7) for CycleGAN's PatchGAN, one score per
overlapping patch of the image.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import functional as F
from .. import nn

IMAGE_SHAPE = (1, 28, 28)


def _check_images(name, x, channels=1):
    if x.ndim != 4 or x.shape[1] != channels or x.shape[2:] != (28, 28):
        raise ValueError(f"{name}: expected images (N, {channels}, 28, 28), got shape {x.shape}")


def _check_latent(name, z, latent_dim):
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise ValueError(f"{name}: expected codings (N, {latent_dim}), got shape {z.shape}")


def dcgan_init_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN's initialisation: convolution, transposed convolution and linear weights from
    N(0, std^2), batch-norm scales from N(1, std^2), biases zero."""
    conv_types = tuple(t for t in (nn.Conv2d, getattr(nn, "ConvTranspose2d", None), nn.Linear)
                       if t is not None)
    for m in module.modules():
        if isinstance(m, conv_types):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


# --------------------------------------------------------------------------- dense GAN


class DenseGenerator(nn.Module):
    """Codings (N, latent_dim) -> images (N, 1, 28, 28): dense layers with LeakyReLU(0.2)
    (batch norm before it with ``batch_norm=True``), then 784 tanh units."""

    def __init__(self, latent_dim: int = 64, hidden: Sequence[int] = (256, 512),
                 batch_norm: bool = False):
        super().__init__()
        self.latent_dim = latent_dim
        layers, width = [], latent_dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.LeakyReLU(0.2))
            width = h
        layers += [nn.Linear(width, 28 * 28), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        _check_latent("DenseGenerator", z, self.latent_dim)
        return self.net(z).reshape(z.shape[0], *IMAGE_SHAPE)


class DenseDiscriminator(nn.Module):
    """Images (N, 1, 28, 28) -> logits (N, 1): flatten, dense layers with LeakyReLU(0.2)
    (and dropout when ``dropout > 0``), one output unit."""

    def __init__(self, hidden: Sequence[int] = (512, 256), dropout: float = 0.0):
        super().__init__()
        layers, width = [nn.Flatten()], 28 * 28
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        _check_images("DenseDiscriminator", x)
        return self.net(x)


# --------------------------------------------------------------------------- DCGAN


class DCGANGenerator(nn.Module):
    """DCGAN generator for 28x28: a dense projection of the codings to ``2*width`` maps of
    7x7, then two stride-2 transposed convolutions (4x4 kernels, 7 -> 14 -> 28), batch norm
    and ReLU between them, tanh at the end (Radford et al.'s recipe, at MNIST size)."""

    def __init__(self, latent_dim: int = 64, width: int = 32):
        super().__init__()
        self.latent_dim, self.width = latent_dim, width
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * width * 7 * 7, bias=False))
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),  # 14x14
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),                      # 28x28
            nn.Tanh(),
        )
        dcgan_init_(self)

    def forward(self, z):
        _check_latent("DCGANGenerator", z, self.latent_dim)
        return self.net(self.project(z).reshape(z.shape[0], 2 * self.width, 7, 7))


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator for 28x28: two stride-2 convolutions (4x4 kernels,
    28 -> 14 -> 7) with LeakyReLU(0.2), batch norm on the second (none on the input layer,
    as in the paper), then a dense layer to one logit."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),            # 14x14
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),           # 7x7
            nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1),
        )
        dcgan_init_(self)

    def forward(self, x):
        _check_images("DCGANDiscriminator", x)
        return self.net(x)


# --------------------------------------------------------------------------- CycleGAN


class InstanceNorm2d(nn.Module):
    """Instance normalisation (each image's each channel to zero mean and unit variance
    over its pixels; Ulyanov et al. 2016), which CycleGAN uses instead of batch norm, with
    a learned per-channel scale and shift. Written as batch norm over a (1, N*C, H, W) view,
    so it runs on the batch-norm kernels and their gradients."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.norm = nn.BatchNorm2d(num_features, eps=eps, affine=affine,
                                   track_running_stats=False)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"InstanceNorm2d({self.num_features}): expected (N, "
                             f"{self.num_features}, H, W), got shape {x.shape}")
        n, c, h, w = x.shape
        y = F.batch_norm(x.reshape(1, n * c, h, w), None, None, training=True, eps=self.eps)
        y = y.reshape(n, c, h, w)
        if self.norm.weight is not None:
            y = y * self.norm.weight.reshape(1, c, 1, 1) + self.norm.bias.reshape(1, c, 1, 1)
        return y


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norm, ReLU between them, added to the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), InstanceNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), InstanceNorm2d(channels),
        )

    def forward(self, x):
        return x + self.body(x)


class CycleGANGenerator(nn.Module):
    """CycleGAN's ResNet generator (c7s1-k, d2k, d4k, R4k x n, u2k, uk, c7s1-1) at 28x28:
    a 7x7 convolution, two stride-2 convolutions down to 7x7, ``n_blocks`` residual blocks,
    two stride-2 transposed convolutions back to 28x28 and a 7x7 convolution with tanh.
    Instance norm and ReLU after every layer but the last; zero padding where the paper
    reflects."""

    def __init__(self, width: int = 16, n_blocks: int = 3, channels: int = 1):
        super().__init__()
        self.channels = channels
        w = width

        def block(conv, out):
            return [conv, InstanceNorm2d(out), nn.ReLU()]

        self.net = nn.Sequential(
            *block(nn.Conv2d(channels, w, 7, padding=3), w),                              # 28
            *block(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), 2 * w),                     # 14
            *block(nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), 4 * w),                 # 7
            *[ResidualBlock(4 * w) for _ in range(n_blocks)],
            *block(nn.ConvTranspose2d(4 * w, 2 * w, 3, stride=2, padding=1,
                                      output_padding=1), 2 * w),                          # 14
            *block(nn.ConvTranspose2d(2 * w, w, 3, stride=2, padding=1,
                                      output_padding=1), w),                              # 28
            nn.Conv2d(w, channels, 7, padding=3), nn.Tanh(),
        )

    def forward(self, x):
        _check_images("CycleGANGenerator", x, self.channels)
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """CycleGAN's PatchGAN discriminator at 28x28: 4x4 convolutions with LeakyReLU(0.2),
    two of stride 2 (28 -> 14 -> 7), instance norm after all but the first, then a
    one-channel convolution: (N, 1, 7, 7) logits, one per overlapping image patch."""

    def __init__(self, width: int = 32, channels: int = 1):
        super().__init__()
        self.channels = channels
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),             # 14
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), InstanceNorm2d(2 * w),            # 7
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 1, 3, padding=1),
        )

    def forward(self, x):
        _check_images("PatchDiscriminator", x, self.channels)
        return self.net(x)


GANS = {"gan": (DenseGenerator, DenseDiscriminator),
        "dcgan": (DCGANGenerator, DCGANDiscriminator)}


def gan_pair(name: str, latent_dim: int = 64) -> tuple[nn.Module, nn.Module]:
    """``(generator, discriminator)`` for ``name`` in "gan" (dense) and "dcgan"."""
    if name not in GANS:
        raise ValueError(f"model: expected one of {sorted(GANS)}, got {name!r}")
    gen, disc = GANS[name]
    return gen(latent_dim=latent_dim), disc()
