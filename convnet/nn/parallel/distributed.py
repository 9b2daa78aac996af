"""DistributedDataParallel: one model replica per rank, gradients averaged during backward.

Gradients are grouped into buckets of about ``bucket_cap_mb`` in the reverse order of the
parameters' registration (roughly the order backward produces them; the first bucket is
kept small, 1 MB, so that communication starts early). Each parameter's
post-accumulate-grad hook copies its gradient into its bucket; a full bucket starts a
non-blocking all-reduce (MPI ``Iallreduce``) at once, so communication overlaps the rest
of the backward pass. Buckets are started strictly in order, as MPI requires every rank to
issue its collectives in the same order.

When the last bucket has started, the hook of that last gradient waits for all of them
and writes the averaged gradients back into ``.grad``. That is the end of the backward
pass (every gradient is final by then), so ``loss.backward()`` returns with averaged
gradients, as in PyTorch: clipping or inspecting ``.grad`` before ``optimizer.step()``
sees the synchronised values, and the optimizer needs no wrapping.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ...autograd import is_grad_enabled
from ...tensor import Tensor
from ..module import Module

_FIRST_BUCKET_BYTES = 1024 * 1024  # PyTorch's: the first bucket starts communication early


class _Bucket:
    def __init__(self, params, xp):
        self.params = params
        sizes = [p.numel() for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.flat = xp.zeros(int(self.offsets[-1]), params[0].dtype)
        self.ready = [False] * len(params)
        self.count = 0
        self.work = None

    def reset(self):
        self.ready = [False] * len(self.params)
        self.count = 0
        self.work = None

    def view(self, i):
        return self.flat[self.offsets[i]:self.offsets[i + 1]].reshape(self.params[i].shape)


def _tensors_in(obj):
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors_in(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors_in(o)


def _reachable_leaves(outputs) -> set[int]:
    """ids of the leaf tensors the outputs' graph reaches (through its Function nodes, whose
    edges are either further nodes or the leaves themselves)."""
    leaves, seen, stack = set(), set(), []
    for t in _tensors_in(outputs):
        if t._ctx is None:
            if t.requires_grad:
                leaves.add(id(t))
        else:
            stack.append(t._ctx)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for e in node.edges:
            if e is None:
                continue
            if isinstance(e, Tensor):
                leaves.add(id(e))
            else:
                stack.append(e)
    return leaves


class DistributedDataParallel(Module):
    """Wraps ``module`` so that ``backward()`` averages gradients over all ranks, like
    ``torch.nn.parallel.DistributedDataParallel``; see the module docstring."""

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None,
                 bucket_cap_mb: float = 25, find_unused_parameters: bool = False,
                 check_reduction: bool = False, gradient_as_bucket_view: bool = False,
                 static_graph: bool = False):
        from ... import distributed as dist
        from ...distributed._group import _get

        super().__init__()
        group = _get()
        if not isinstance(module, Module):
            raise TypeError(f"module: expected a convnet.nn.Module, got "
                            f"{type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) \
                or bucket_cap_mb <= 0:
            raise ValueError(f"bucket_cap_mb: expected a positive number, got "
                             f"{bucket_cap_mb!r}")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.bucket_cap_mb = bucket_cap_mb
        self.require_backward_grad_sync = True
        self._dist = dist
        self._world = group.size
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't "
                               "have any parameter that requires a gradient.")
        self._params = params
        self._sync_states([p for p in module.parameters()] + list(module.buffers()))
        self._buckets = self._make_buckets(params, int(bucket_cap_mb * 1024 * 1024))
        self._where = {}
        for b in self._buckets:
            for i, p in enumerate(b.params):
                self._where[id(p)] = (b, i)
        self._handles = [p.register_post_accumulate_grad_hook(self._grad_ready)
                         for p in params]
        self._syncing = False  # a synchronised backward is expected
        self._next = 0  # the next bucket to start
        self._used = None  # local usage map when find_unused_parameters
        self.comm_wait_seconds = 0.0  # total time backward waited for the all-reduces

    # ------------------------------------------------------------------ set-up
    def _sync_states(self, tensors) -> None:
        """Rank 0's values into every rank's tensors, one broadcast per dtype."""
        by_dtype: dict = {}
        for t in tensors:
            by_dtype.setdefault((t.dtype, t.device), []).append(t)
        for group in by_dtype.values():
            xp = group[0]._xp
            flat = xp.concatenate([t._data.ravel() for t in group])
            self._dist.broadcast(flat, src=0)
            o = 0
            for t in group:
                n = t.numel()
                t._data[...] = flat[o:o + n].reshape(t.shape)
                o += n

    @staticmethod
    def _make_buckets(params, cap: int):
        buckets, current, size = [], [], 0
        limit = min(_FIRST_BUCKET_BYTES, cap)
        for p in reversed(params):
            if current and (size + p._data.nbytes > limit or p.dtype != current[0].dtype
                            or p.device != current[0].device):
                buckets.append(current)
                current, size, limit = [], 0, cap
            current.append(p)
            size += p._data.nbytes
        buckets.append(current)
        return [_Bucket(ps, ps[0]._xp) for ps in buckets]

    # ------------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        if self.broadcast_buffers and self._world > 1:
            buffers = list(self.module.buffers())
            if buffers:
                self._sync_states(buffers)
        out = self.module(*args, **kwargs)
        if is_grad_enabled():
            self._prepare_for_backward(out)
        return out

    def _prepare_for_backward(self, out) -> None:
        if self._syncing and any(b.count for b in self._buckets):
            missing = [i for i, p in enumerate(self._params)
                       if not self._where[id(p)][0].ready[self._where[id(p)][1]]]
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting "
                "a new one. This error indicates that your module has parameters that were "
                "not used in producing loss. You can enable unused parameter detection by "
                "passing the keyword argument `find_unused_parameters=True` to "
                "DistributedDataParallel. Parameter indices which did not receive grad for "
                f"rank {self._dist.get_rank()}: {missing}")
        for b in self._buckets:
            b.reset()
        self._next = 0
        self._syncing = self.require_backward_grad_sync
        if not self._syncing:
            return
        if self.find_unused_parameters:
            reached = _reachable_leaves(out)
            self._used = np.array([id(p) in reached for p in self._params], np.int32)
            for p, used in zip(self._params, self._used, strict=True):
                if not used:  # contributes zero, so the buckets can complete
                    b, i = self._where[id(p)]
                    b.view(i)[...] = 0
                    self._mark(b, i)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside accumulate gradients locally, without
        communication; the first synchronised backward after it reduces the sum."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    # ------------------------------------------------------------------ backward
    def _grad_ready(self, p) -> None:
        if not self._syncing:
            return
        b, i = self._where[id(p)]
        if b.ready[i]:
            raise RuntimeError(
                f"Expected to mark a variable ready only once. Parameter index "
                f"{self._params.index(p)} received its gradient twice in one synchronised "
                "backward (a second backward over the same forward needs a new forward)")
        b.view(i)[...] = p.grad._data
        self._mark(b, i)

    def _mark(self, b: _Bucket, i: int) -> None:
        b.ready[i] = True
        b.count += 1
        started = False
        while self._next < len(self._buckets) and \
                self._buckets[self._next].count == len(self._buckets[self._next].params):
            nb = self._buckets[self._next]
            nb.work = self._dist.all_reduce(nb.flat, async_op=True)
            self._next += 1
            started = True
        if self._next == len(self._buckets):
            self._finish()
        elif not started:
            # MPI moves a non-blocking collective along only inside MPI calls: poke the
            # started ones while backward runs
            for nb in self._buckets[:self._next]:
                nb.work.is_completed()

    def _finish(self) -> None:
        import time

        self._syncing = False
        t0 = time.perf_counter()
        used = None
        if self.find_unused_parameters:
            used = self._used.copy()
            self._dist.all_reduce(used, op=self._dist.ReduceOp.MAX)
        index = {id(p): k for k, p in enumerate(self._params)}
        for b in self._buckets:
            b.work.wait()
        # the communication that backward did not hide (benchmarks/bench_distributed.py)
        self.comm_wait_seconds += time.perf_counter() - t0
        for b in self._buckets:
            b.flat /= self._world
            for i, p in enumerate(b.params):
                if used is not None and not used[index[id(p)]]:
                    continue  # no rank used it: its .grad stays as it was, as in PyTorch
                if p.grad is None:
                    p.grad = Tensor._wrap(b.view(i).copy(), False)
                else:
                    p.grad._data[...] = b.view(i)
