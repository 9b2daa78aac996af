"""The training precisions of ``fit`` and ``convnet train --precision``: float32, or
mixed precision with autocast (bfloat16; float16 with a GradScaler, whose dynamic loss
scale keeps float16's small gradients from flushing to zero)."""

from __future__ import annotations

from .. import _dtypes
from .autocast_mode import autocast
from .grad_scaler import GradScaler

PRECISIONS = {"fp32": None, "bf16": _dtypes.bfloat16, "fp16": _dtypes.float16}
# what --amp means on each device: PyTorch's default autocast dtype there
DEFAULT_AMP = {"cpu": "bf16", "cuda": "fp16"}


class Precision:
    """One run's precision: the autocast region of the forward pass, and for float16 the
    scaler around backward and the optimizer step."""

    def __init__(self, name: str = "fp32", device: str | None = None):
        if name not in PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got "
                             f"{name!r}")
        self.name = name
        self.device = _dtypes.device(device or "cpu").type
        self.dtype = PRECISIONS[name]
        self.scaler = GradScaler(self.device) if name == "fp16" else None

    def autocast(self) -> autocast:
        return autocast(self.device, dtype=self.dtype or _dtypes.bfloat16,
                        enabled=self.dtype is not None)

    def backward(self, loss) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale_(self, optimizer) -> None:
        """Before clipping: the gradients at their true scale."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
