"""AlexNet (Krizhevsky, Sutskever, Hinton 2012) in torchvision's layout."""

from __future__ import annotations

from .. import nn


class AlexNet(nn.Module):
    """torchvision's AlexNet (the one-GPU variant of the paper: 64-192-384-256-256 maps), so
    its state_dict keys and parameter count (61,100,840 for 1000 classes) are torchvision's.

    ``lrn=True`` gives the course's variant: local response normalisation (size 5,
    alpha=1e-4 divided by the size as in PyTorch, i.e. Géron's alpha=2e-5, beta=0.75, k=1)
    after the first two ReLUs, which shifts the ``features`` indices that follow.

    An adaptive average pool to 6x6 sits before the classifier, so any input of at least
    63x63 works (224x224 gives exactly 6x6 maps there).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
                 lrn: bool = False):
        super().__init__()

        def norm():
            return [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)] if lrn else []

        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(), *norm(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), *norm(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def alexnet(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
            lrn: bool = False) -> AlexNet:
    """AlexNet, torchvision's layout (see :class:`AlexNet`); inputs of at least 63x63."""
    return AlexNet(num_classes, in_channels, dropout, lrn)
