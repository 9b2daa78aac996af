"""Data: the IDX reader."""

from __future__ import annotations

from .idx import read_idx, write_idx

__all__ = ["read_idx", "write_idx"]
