"""LeNet-5 (LeCun et al. 1998), as in the course's table."""

from __future__ import annotations

from .. import nn

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(nn.Module):
    """LeNet-5 for 28x28 images (MNIST, Fashion-MNIST), the course's table layer by layer:

    ====  ===============  =====  =======  ======  ======  ==========
    layer type             maps   size     kernel  stride  activation
    ====  ===============  =====  =======  ======  ======  ==========
    In    input            1      32x32    -       -       -
    C1    convolution      6      28x28    5x5     1       tanh
    S2    avg pooling      6      14x14    2x2     2       -
    C3    convolution      16     10x10    5x5     1       tanh
    S4    avg pooling      16     5x5      2x2     2       -
    C5    convolution      120    1x1      5x5     1       tanh
    F6    fully connected  -      84       -       -       tanh
    Out   fully connected  -      10       -       -       (logits)
    ====  ===============  =====  =======  ======  ======  ==========

    The 28x28 input is zero-padded to 32x32 by C1's ``padding=2``, so the model takes
    28x28 images. Differences from the 1998 network, all as in the course's Keras version:
    the pooling layers have no trainable coefficient and bias (the activation sits on the
    convolution before them), C3 connects to all of S2's maps (not LeCun's sparse table),
    and the RBF output layer is a plain linear layer: the model returns logits, to be
    trained with softmax cross-entropy (``F.cross_entropy``).

    ``activation="relu"`` and ``pooling="max"`` give the modern variant.
    Keys: ``features.{0,3,6}`` (C1, C3, C5), ``classifier.{0,2}`` (F6, output).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "tanh",
                 pooling: str = "avg"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got "
                             f"{activation!r}")
        if pooling not in _POOLS:
            raise ValueError(f"pooling: expected one of {sorted(_POOLS)}, got {pooling!r}")
        act, pool = _ACTIVATIONS[activation], _POOLS[pooling]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), act(), pool(2, 2),   # C1, S2
            nn.Conv2d(6, 16, 5), act(), pool(2, 2),                       # C3, S4
            nn.Conv2d(16, 120, 5), act(),                                 # C5
        )
        self.classifier = nn.Sequential(
            nn.Linear(120, 84), act(),                                    # F6
            nn.Linear(84, num_classes),                                   # output (logits)
        )

    def forward(self, x):
        if x.ndim != 4 or x.shape[2:] != (28, 28):
            raise ValueError(f"LeNet5: expected input (N, C, 28, 28), got shape {x.shape}")
        return self.classifier(self.features(x).flatten(1))


def lenet5(num_classes: int = 10, in_channels: int = 1, activation: str = "tanh",
           pooling: str = "avg") -> LeNet5:
    """LeNet-5 of the course (see :class:`LeNet5`): 28x28 input, logits out."""
    return LeNet5(num_classes, in_channels, activation, pooling)
