"""GoogLeNet (Szegedy et al. 2014) and its Inception module, in torchvision's layout."""

from __future__ import annotations

from .. import nn
from ..functional import cat


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps=0.001), ReLU: torchvision's unit."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches over the same input, concatenated along the channels:

    - ``branch1``: 1x1 convolution (``ch1x1`` maps);
    - ``branch2``: 1x1 reduction (``ch3x3red``) then 3x3 convolution (``ch3x3``);
    - ``branch3``: 1x1 reduction (``ch5x5red``) then the "5x5" convolution (``ch5x5``) which,
      as in torchvision (a known deviation from the paper, kept for its weights), is 3x3;
    - ``branch4``: 3x3 max pool (stride 1, padding 1) then 1x1 projection (``pool_proj``).

    Every branch keeps the spatial size; the output has ch1x1 + ch3x3 + ch5x5 + pool_proj
    channels.
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, 1),
                                     BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, 1),
                                     BasicConv2d(ch5x5red, ch5x5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, 1))

    def forward(self, x):
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """torchvision's GoogLeNet without the auxiliary classifiers and with
    ``transform_input=False``: 6,624,904 parameters for 1000 classes, torchvision's keys
    (``conv1.conv.weight``, ``inception3a.branch2.1.bn.running_mean``, ``fc.weight``...).
    Max pools use ``ceil_mode`` as there; the head is a global average pool, dropout (0.2)
    and ``fc``, so any input of at least 15x15 works. Convolution and linear weights start
    from N(0, 0.01) (torchvision's truncation at +-2 never triggers at that scale)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2):
        super().__init__()
        self.conv1 = BasicConv2d(in_channels, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for block in (self.inception4a, self.inception4b, self.inception4c, self.inception4d,
                      self.inception4e):
            x = block(x)
        x = self.maxpool4(x)
        x = self.avgpool(self.inception5b(self.inception5a(x)))
        return self.fc(self.dropout(x.flatten(1)))


def googlenet(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2) -> GoogLeNet:
    """GoogLeNet built from :class:`Inception` modules (see :class:`GoogLeNet`)."""
    return GoogLeNet(num_classes, in_channels, dropout)
