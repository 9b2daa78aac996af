"""Upsampling layers for decoders and generators (PyTorch's ``nn.Upsample`` and its
fixed-mode variants)."""

from __future__ import annotations

from .. import functional as F
from ..functional._interpolate import INTERPOLATE_MODES
from .module import Module


class Upsample(Module):
    """Resize feature maps by ``scale_factor`` or to ``size``; ``mode`` 'nearest' or
    'bilinear' (PyTorch's ``nn.Upsample``; see :func:`convnet.functional.interpolate`)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        if mode not in INTERPOLATE_MODES:
            raise ValueError(f"mode: expected one of {INTERPOLATE_MODES}, got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError("size, scale_factor: give exactly one of them")
        if mode == "nearest" and align_corners is not None:
            raise ValueError("align_corners: only the bilinear mode takes it")
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.scale_factor = (float(scale_factor) if isinstance(scale_factor, (int, float))
                             else scale_factor)
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else \
            f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}" + (
            f", align_corners={self.align_corners}" if self.align_corners is not None else "")


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear with ``align_corners=True``, as PyTorch's (deprecated there) layer."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, "bilinear", align_corners=True)
