"""Utilities under PyTorch's ``torch.utils`` names."""

from . import data

__all__ = ["data"]
