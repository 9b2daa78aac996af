"""PyTorch's ``torch.utils`` names: ``convnet.utils.data`` (Dataset, DataLoader, samplers)."""

from __future__ import annotations

import importlib


def __getattr__(name):
    # imported on first use, so that ``import convnet`` stays light
    if name == "data":
        return importlib.import_module(f"{__name__}.data")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
