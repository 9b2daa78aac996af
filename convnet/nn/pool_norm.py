"""Layers of the model zoo: adaptive average pooling and local response normalisation,
with PyTorch's names and constructor arguments."""

from __future__ import annotations

from .. import functional as F
from .module import Module


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size whatever the input size (int or (h, w); None
    keeps that axis), PyTorch's bins: output i of n averages [floor(i*n/out),
    ceil((i+1)*n/out))."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class LocalResponseNorm(Module):
    """Normalisation across neighbouring channels (AlexNet):
    ``x / (k + alpha/size * sum of x^2 over `size` channels)^beta``."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
