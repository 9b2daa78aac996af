"""ResNet (He et al. 2015): residual blocks with skip connections, in torchvision's layout."""

from __future__ import annotations

from .. import nn
from ..functional import relu
from ..nn.fusion import sequential_forward as _chain  # conv [+ bn] [+ relu], fused when exact


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; the input is added back before the last ReLU
    (through ``downsample``, a strided 1x1 projection + batch norm, where the shape changes)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = _chain((self.conv1, self.bn1, self.relu), x)
        out = _chain((self.conv2, self.bn2), out)
        return relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduction, 3x3 (strided, as torchvision's "ResNet v1.5"), 1x1 expansion to
    ``planes * 4``, each with batch norm, plus the skip connection."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = _chain((self.conv1, self.bn1, self.relu), x)
        out = _chain((self.conv2, self.bn2, self.relu), out)
        out = _chain((self.conv3, self.bn3), out)
        return relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet: stem (7x7/2 convolution, batch norm, ReLU, 3x3/2 max pool), four
    stages of residual blocks (64, 128, 256, 512 planes; stages 2-4 halve the size), global
    average pool, ``fc``. Keys are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
    ``layer2.0.downsample.0``, ``fc``...). Convolutions start He-normal (fan_out, ReLU gain),
    batch norms at weight 1, bias 0.

    ``small_input=True`` is for 28x28/32x32 images (Fashion-MNIST, CIFAR): the stem becomes a
    3x3 stride-1 convolution and the max pool is dropped (an Identity), so the stages see
    28x28 -> 28, 14, 7, 4 instead of 7, 4, 2, 1. Only ``conv1.weight``'s shape changes.
    """

    def __init__(self, block, layers, num_classes: int = 1000, in_channels: int = 3,
                 small_input: bool = False, widths=(64, 128, 256, 512)):
        super().__init__()
        if len(widths) != len(layers):
            raise ValueError(f"widths: one per stage ({len(layers)}), got {widths}")
        self.inplanes = widths[0]
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        self.stages = len(layers)
        for i, (width, blocks) in enumerate(zip(widths, layers)):
            setattr(self, f"layer{i + 1}",
                    self._make_layer(block, width, blocks, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(_chain((self.conv1, self.bn1, self.relu), x))
        for i in range(1, self.stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes=1000, in_channels=3, small_input=False) -> ResNet:
    """ResNet-18: BasicBlocks [2, 2, 2, 2]."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, small_input)


def resnet34(num_classes=1000, in_channels=3, small_input=False) -> ResNet:
    """ResNet-34: BasicBlocks [3, 4, 6, 3]."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, small_input)


def resnet50(num_classes=1000, in_channels=3, small_input=False) -> ResNet:
    """ResNet-50: Bottlenecks [3, 4, 6, 3]."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, small_input)


def resnet20(num_classes=10, in_channels=3, small_input=True, width=16) -> ResNet:
    """The small ResNet of He et al. for 32x32 images (and 28x28 Fashion-MNIST): a 3x3 stem,
    three stages of three BasicBlocks with ``width``, 2x and 4x channels (16, 32, 64 by
    default), projection shortcuts where the shape changes, global pooling, ``fc``."""
    return ResNet(BasicBlock, [3, 3, 3], num_classes, in_channels, small_input,
                  widths=(width, 2 * width, 4 * width))
