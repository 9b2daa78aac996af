"""VGG (Simonyan and Zisserman 2014), configurations A, B, D, E, in torchvision's layout."""

from __future__ import annotations

from .. import nn

# numbers are 3x3 convolutions (output maps), "M" a 2x2 max pool
CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
         "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512,
         512, 512, "M"],
}


def make_layers(config, in_channels: int = 3, batch_norm: bool = False) -> nn.Sequential:
    layers = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(in_channels, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` (3x3 convolutions [+ batch norm] + ReLU, five 2x2 max pools), ``avgpool``
    (adaptive, to 7x7: any input of at least 32x32 works) and ``classifier`` (4096-4096-
    num_classes with dropout), keys and initialisation as torchvision's: convolutions
    He-normal (fan_out, ReLU gain) with zero bias, linear layers N(0, 0.01) with zero bias."""

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5,
                 init_weights: bool = True):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def _vgg(depth: int, batch_norm: bool, num_classes: int, in_channels: int, **kwargs) -> VGG:
    return VGG(make_layers(CONFIGS[depth], in_channels, batch_norm), num_classes, **kwargs)


def vgg11(num_classes=1000, in_channels=3, batch_norm=False, **kwargs) -> VGG:
    """VGG-11 (configuration A); ``batch_norm=True`` is ``vgg11_bn``."""
    return _vgg(11, batch_norm, num_classes, in_channels, **kwargs)


def vgg13(num_classes=1000, in_channels=3, batch_norm=False, **kwargs) -> VGG:
    """VGG-13 (configuration B)."""
    return _vgg(13, batch_norm, num_classes, in_channels, **kwargs)


def vgg16(num_classes=1000, in_channels=3, batch_norm=False, **kwargs) -> VGG:
    """VGG-16 (configuration D)."""
    return _vgg(16, batch_norm, num_classes, in_channels, **kwargs)


def vgg19(num_classes=1000, in_channels=3, batch_norm=False, **kwargs) -> VGG:
    """VGG-19 (configuration E)."""
    return _vgg(19, batch_norm, num_classes, in_channels, **kwargs)


def vgg11_bn(num_classes=1000, in_channels=3, **kwargs) -> VGG:
    return _vgg(11, True, num_classes, in_channels, **kwargs)


def vgg13_bn(num_classes=1000, in_channels=3, **kwargs) -> VGG:
    return _vgg(13, True, num_classes, in_channels, **kwargs)


def vgg16_bn(num_classes=1000, in_channels=3, **kwargs) -> VGG:
    return _vgg(16, True, num_classes, in_channels, **kwargs)


def vgg19_bn(num_classes=1000, in_channels=3, **kwargs) -> VGG:
    return _vgg(19, True, num_classes, in_channels, **kwargs)
