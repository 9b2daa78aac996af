"""Array code the kernels have no kernel for, written once for NumPy and CuPy: the choice
of the array library's routine is made here, not in the ops."""

from __future__ import annotations

import numpy as np

from . import _checks as ck

__all__ = ["scatter_add"]


def scatter_add(out, index, values):
    """``out[index] += values`` with repeated indices adding up (which an assignment through
    fancy indexing would not do): ``np.add.at``, or ``cupyx.scatter_add`` on CuPy."""
    if ck.xp_of(out) is np:
        np.add.at(out, index, values)
    else:
        import cupyx

        cupyx.scatter_add(out, index, values)
    return out
