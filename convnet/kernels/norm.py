"""Batch normalisation."""

from __future__ import annotations

from . import _checks as ck
from ._boundary import launch

__all__ = [
    "batch_norm_forward_training", "batch_norm_forward_inference", "batch_norm_backward",
]


def _bn_view(x):
    """(N, C, H, W) or (N, C) as the kernels' (N, C, L)."""
    x = ck.float_array("x", x)
    if x.ndim not in (2, 4):
        raise ValueError(f"x: expected (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
    return x, x.reshape(x.shape[0], x.shape[1], -1)


def _per_channel(name, v, c, dtype, xp, fill, stat=False):
    """A (C,) parameter of a call of ``dtype``: that dtype, or float32 for a 16-bit call
    (only float32 with ``stat``: the statistics); None gives ``fill`` in float32 there."""
    st = ck.stat_dtype(dtype)
    if v is None:
        return xp.full((c,), fill, dtype=st)
    v = ck.float_array(name, v, (st,) if stat else (dtype, st))
    if tuple(v.shape) != (c,):
        raise ValueError(f"{name}: expected shape ({c},) (one value per channel), "
                         f"got {tuple(v.shape)}")
    return v


def batch_norm_forward_training(x, weight=None, bias=None, running_mean=None, running_var=None,
                                momentum=0.1, eps=1e-5, *, backend=None):
    """Normalise with the batch's statistics; returns (y, mean, invstd).

    x (N, C, H, W) or (N, C); statistics per channel. ``running_mean``/``running_var``,
    when given, are updated in place as PyTorch does: ``r = (1 - momentum) * r + momentum
    * batch_stat``, the variance unbiased (N*H*W / (N*H*W - 1)).
    """
    x, x3 = _bn_view(x)
    n, c, l_ = x3.shape
    xp = ck.xp_of(x)
    weight = _per_channel("weight", weight, c, x.dtype, xp, 1.0)
    bias = _per_channel("bias", bias, c, x.dtype, xp, 0.0)
    for name, r in (("running_mean", running_mean), ("running_var", running_var)):
        if r is not None:
            if not r.flags.c_contiguous:
                raise ValueError(f"{name}: must be C-contiguous (it is updated in place)")
            _per_channel(name, r, c, x.dtype, xp, 0.0)
    count = n * l_
    if count < 2 and running_var is not None:
        raise ValueError(f"x: shape {tuple(x.shape)} gives one value per channel; batch norm "
                         "in training needs more than one")
    y3 = xp.empty_like(x3)
    st = ck.stat_dtype(x.dtype)  # float32 statistics for 16-bit x
    mean = xp.empty((c,), dtype=st)
    var = xp.empty((c,), dtype=st)
    invstd = xp.empty((c,), dtype=st)
    launch("batch_norm_forward_training", backend, x3, weight, bias, y3, mean, var, invstd,
           float(eps))
    if running_mean is not None:
        running_mean *= 1.0 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        running_var *= 1.0 - momentum
        running_var += (momentum * count / (count - 1)) * var
    return y3.reshape(x.shape), mean, invstd


def batch_norm_forward_inference(x, running_mean, running_var, weight=None, bias=None, eps=1e-5,
                                 *, backend=None):
    """Normalise with the running statistics: x (N, C, H, W) or (N, C) -> y, same shape."""
    x, x3 = _bn_view(x)
    c = x3.shape[1]
    xp = ck.xp_of(x)
    running_mean = _per_channel("running_mean", running_mean, c, x.dtype, xp, 0.0)
    running_var = _per_channel("running_var", running_var, c, x.dtype, xp, 1.0)
    weight = _per_channel("weight", weight, c, x.dtype, xp, 1.0)
    bias = _per_channel("bias", bias, c, x.dtype, xp, 0.0)
    y3 = xp.empty_like(x3)
    launch("batch_norm_forward_inference", backend, x3, weight, bias, running_mean,
           running_var, y3, float(eps))
    return y3.reshape(x.shape)


def batch_norm_backward(dy, x, mean, invstd, weight=None, *, backend=None):
    """Training-mode gradients: returns (dx, dweight, dbias).

    dy, x (N, C, H, W) or (N, C); mean, invstd (C,) from the forward pass.
    """
    x, x3 = _bn_view(x)
    c = x3.shape[1]
    dy = ck.float_array("dy", dy, x.dtype)
    if dy.shape != x.shape:
        raise ValueError(f"dy: shape {tuple(dy.shape)} differs from x's {tuple(x.shape)}")
    xp = ck.xp_of(x)
    mean = _per_channel("mean", mean, c, x.dtype, xp, 0.0, stat=True)
    invstd = _per_channel("invstd", invstd, c, x.dtype, xp, 1.0, stat=True)
    weight = _per_channel("weight", weight, c, x.dtype, xp, 1.0)
    dx3 = xp.empty_like(x3)
    dweight = xp.empty((c,), dtype=weight.dtype)  # float32 when x is 16-bit and weight is not
    dbias = xp.empty((c,), dtype=weight.dtype)
    launch("batch_norm_backward", backend, dy.reshape(x3.shape), x3, weight, mean, invstd,
           dx3, dweight, dbias)
    return dx3.reshape(x.shape), dweight, dbias


