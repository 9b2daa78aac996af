"""The course's CNN architectures with torchvision-style constructors
``fn(num_classes=..., in_channels=..., **options)``: LeNet-5, AlexNet, VGG, GoogLeNet and
ResNet. Every model returns logits; state_dict keys follow torchvision's where it has the
model. ``get_model(name, **kwargs)`` builds one by name (the command line's MODEL)."""

from __future__ import annotations

from .alexnet import AlexNet, alexnet
from .googlenet import BasicConv2d, GoogLeNet, Inception, googlenet
from .lenet import LeNet5, lenet5
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet20, resnet34, resnet50
from .vgg import (
    VGG,
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
)

MODELS = {
    "lenet": lenet5,
    "lenet5": lenet5,
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg13": vgg13,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "vgg11_bn": vgg11_bn,
    "vgg13_bn": vgg13_bn,
    "vgg16_bn": vgg16_bn,
    "vgg19_bn": vgg19_bn,
    "googlenet": googlenet,
    "resnet18": resnet18,
    "resnet20": resnet20,
    "resnet34": resnet34,
    "resnet50": resnet50,
}


def get_model(name: str, **kwargs):
    """The model called ``name`` (a key of :data:`MODELS`, any case; "-" for "_" accepted),
    built with ``kwargs`` (``num_classes``, ``in_channels`` and the model's options)."""
    key = str(name).lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"model: unknown name {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[key](**kwargs)


__all__ = [
    "MODELS", "get_model", "LeNet5", "lenet5", "AlexNet", "alexnet", "VGG", "vgg11", "vgg13",
    "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "BasicConv2d",
    "Inception", "GoogLeNet", "googlenet", "BasicBlock", "Bottleneck", "ResNet", "resnet18",
    "resnet20", "resnet34", "resnet50",
]

# Autoencoders (unsupervised; not classifiers, so not in MODELS).
from .autoencoder import (  # noqa: E402
    ConvAutoencoder,
    DenoisingAutoencoder,
    DenseAutoencoder,
    TiedLinear,
    VariationalAutoencoder,
)

__all__ += ["DenseAutoencoder", "ConvAutoencoder", "DenoisingAutoencoder",
            "VariationalAutoencoder", "TiedLinear"]

# GANs (generators and discriminators; not classifiers, so not in MODELS).
from .gan import (  # noqa: E402
    CycleGANGenerator,
    DCGANDiscriminator,
    DCGANGenerator,
    DenseDiscriminator,
    DenseGenerator,
    InstanceNorm2d,
    PatchDiscriminator,
    gan_pair,
)

__all__ += ["DenseGenerator", "DenseDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
            "CycleGANGenerator", "PatchDiscriminator", "InstanceNorm2d", "gan_pair"]
