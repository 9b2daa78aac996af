"""The ops added for PyTorch code (selection, ordering, repetition, einsum, item assignment
and in-place arithmetic), in float32 and float64: forward and gradients against PyTorch
and, in float64, against central finite differences (tests/helpers.check_op)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import check_op

IDX = np.array([[0, 2, 1, 4, 3], [1, 1, 0, 0, 2], [3, 2, 2, 1, 0], [4, 0, 1, 1, 1]])


def _setitem(t):
    out = t * 1.0
    out[1:3, ::2] = t[0, :3] * 2.0  # broadcast over the written rows
    out[0] = t[3] ** 2
    return out


def _inplace_chain(t):
    out = t * 1.0
    out += t[0]
    out.mul_(t.tanh())
    out[:, 1].div_(t[:, 2] + 3.0)
    out.clamp_(-0.8, 0.9)
    return out


OPS = [
    ("gather", lambda t: t.gather(1, _i(t, IDX)[:, :3])),
    ("gather0", lambda t: t.gather(0, _i(t, IDX % 4))),
    ("index_select", lambda t: t.index_select(1, _i(t, np.array([4, 0, 4, 2])))),
    ("masked_fill", lambda t: t.masked_fill(t > 0.5, 2.0)),
    ("cumsum", lambda t: t.cumsum(1)),
    ("expand", lambda t: t[:, :1].expand(4, 3)),
    ("repeat", lambda t: t.repeat(2, 1, 2)),
    ("einsum", lambda t: _lib(t).einsum("ij,kj->ik", t, t * t)),
    ("max_dim", lambda t: t.max(1).values), ("min_dim", lambda t: t.min(0)[0]),
    ("sort", lambda t: t.sort(1, descending=True).values),
    ("topk", lambda t: t.topk(2, dim=0).values),
    ("norm", lambda t: t.norm(dim=1)),
    ("setitem", _setitem),
    ("inplace_chain", _inplace_chain),
]


def _lib(t):
    import convnet as cn

    return cn if isinstance(t, cn.Tensor) else __import__("torch")


def _i(t, arr):
    return _lib(t).tensor(arr)


@pytest.mark.parametrize("name,op", OPS, ids=[o[0] for o in OPS])
def test_op_against_torch_and_finite_differences(name, op, dtype, rng):
    x = rng.uniform(0.2, 1.5, (4, 5)) * rng.choice([-1, 1], (4, 5))
    check_op(op, op, [x], dtype, rng=rng)
