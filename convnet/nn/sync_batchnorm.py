"""SyncBatchNorm: batch norm whose statistics are those of the global batch (all ranks).

In training each rank sums its part of the batch per channel and one all-reduce gives the
global mean; a second gives the global variance (two passes, accumulated in float64, so
the result matches one process normalising the whole batch to float32 rounding). The
backward all-reduces the two per-channel sums the input gradient needs (sum dy and sum
dy * xhat); the weight and bias gradients stay local, DistributedDataParallel averages
them like any other parameter's.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..kernels._checks import xp_of
from ..tensor import Tensor
from .layers import _BatchNorm
from .module import Module


def _dist():
    from .. import distributed

    return distributed


class SyncBatchNormFunction(Function):
    def forward(self, x, w, b, running_mean=None, running_var=None, momentum=0.1, eps=1e-5):
        dist = _dist()
        xp = xp_of(x)
        n, c = x.shape[0], x.shape[1]
        x3 = x.reshape(n, c, -1)
        x64 = x3.astype(np.float64)
        stats = xp.concatenate([x64.sum(axis=(0, 2)), xp.asarray([x3.shape[0] * x3.shape[2]],
                                                                 np.float64)])
        dist.all_reduce(stats)
        count = int(stats[-1])
        if count < 2 and running_var is not None:
            raise ValueError(f"input: shape {tuple(x.shape)} on every rank gives {count} "
                             "value(s) per channel; batch norm in training needs more than one")
        mean = stats[:c] / count
        centred = x64 - mean[None, :, None]
        var = (centred * centred).sum(axis=(0, 2))
        dist.all_reduce(var)
        var /= count
        invstd = 1.0 / xp.sqrt(var + eps)
        xhat = centred * invstd[None, :, None]
        y = xhat * w.astype(np.float64)[None, :, None] + b.astype(np.float64)[None, :, None]
        if running_mean is not None:
            running_mean *= 1.0 - momentum
            running_mean += (momentum * mean).astype(running_mean.dtype)
        if running_var is not None:
            running_var *= 1.0 - momentum
            running_var += (momentum * count / (count - 1) * var).astype(running_var.dtype)
        self.save_for_backward(xhat.astype(x.dtype), w, invstd, count)
        return y.astype(x.dtype).reshape(x.shape)

    def backward(self, g):
        dist = _dist()
        xhat, w, invstd, count = self.saved
        xp = xp_of(g)
        c = xhat.shape[1]
        g3 = g.reshape(xhat.shape).astype(np.float64)
        xhat64 = xhat.astype(np.float64)
        local = xp.concatenate([g3.sum(axis=(0, 2)), (g3 * xhat64).sum(axis=(0, 2))])
        sums = local.copy()
        if self.needs_grad[0]:
            dist.all_reduce(sums)
        dx = None
        if self.needs_grad[0]:
            scale = (w.astype(np.float64) * invstd)[None, :, None]
            dx = scale * (g3 - sums[None, :c, None] / count
                          - xhat64 * sums[None, c:, None] / count)
            dx = dx.astype(g.dtype).reshape(g.shape)
        return dx, local[c:].astype(w.dtype), local[:c].astype(w.dtype)


class SyncBatchNorm(_BatchNorm):
    """Batch norm over (N, C, ...) input whose training statistics are all-reduced across
    the ranks of the process group, like ``torch.nn.SyncBatchNorm``. Outside training, or
    without a process group of more than one rank, it is plain batch norm."""

    _ndims = (2, 3, 4, 5)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, dtype=np.float32):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.process_group = process_group

    def forward(self, x):
        dist = _dist()
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm({self.num_features}): expected input of shape "
                             f"(N, {self.num_features}, ...), got {x.shape}")
        sync = self.training and dist.is_initialized() and dist.get_world_size() > 1
        if not sync:
            if x.ndim in (2, 4):
                return super().forward(x)
            n, c = x.shape[:2]
            return super().forward(x.reshape(n, c, -1, 1)).reshape(*x.shape)
        if self.track_running_stats:
            self.num_batches_tracked._data[...] += 1
        xp = x._xp
        w = self.weight if self.affine else Tensor._wrap(xp.ones(self.num_features, x.dtype),
                                                         False)
        b = self.bias if self.affine else Tensor._wrap(xp.zeros(self.num_features, x.dtype),
                                                       False)
        rm = self.running_mean._data if self.track_running_stats else None
        rv = self.running_var._data if self.track_running_stats else None
        return SyncBatchNormFunction.apply(x, w, b, running_mean=rm, running_var=rv,
                                           momentum=self.momentum, eps=self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """``module`` with every BatchNorm layer replaced by a SyncBatchNorm sharing its
        parameters and buffers (the module itself when it is one), like PyTorch's."""
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            out = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group)
            for store in ("_parameters", "_buffers"):
                getattr(out, store).update(getattr(module, store))
            out.train(module.training)
        for name, child in module.named_children():
            new = cls.convert_sync_batchnorm(child, process_group)
            if new is not child:
                module._modules[name] = new
        return out


__all__ = ["SyncBatchNorm", "SyncBatchNormFunction"]
