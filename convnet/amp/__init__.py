"""Mixed-precision training, ``torch.amp``'s API: :class:`autocast` runs the matrix
products in 16 bits with float32 master weights; :class:`GradScaler` scales the loss so
that float16 gradients keep their small values."""

from .autocast_mode import (
    autocast,
    clear_autocast_cache,
    get_autocast_dtype,
    is_autocast_available,
    is_autocast_enabled,
)
from .grad_scaler import GradScaler

__all__ = ["GradScaler", "autocast", "clear_autocast_cache", "get_autocast_dtype",
           "is_autocast_available", "is_autocast_enabled"]
