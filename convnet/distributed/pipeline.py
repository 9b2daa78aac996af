"""Pipeline model parallelism: an ``nn.Sequential`` split into stages, one per rank.

The course's "distribute the CNN over several processors" (AlexNet was split over two
GPUs): each rank holds only its stage's layers, parameters and activations. A batch is cut
into ``chunks`` micro-batches; rank r runs its stage on a micro-batch, sends the
activations to rank r+1 (``Isend``) and, in the backward pass, receives the gradient of
those activations from r+1, back-propagates through its stage and sends the gradient of
its input to r-1. Schedules:

- ``"gpipe"``: all micro-batches forward, then all backward (GPipe); every rank holds the
  activations of all micro-batches at the peak.
- ``"1f1b"``: after a warm-up of (stages - rank - 1) forwards, one forward then one
  backward (PipeDream-flush); a rank holds at most (stages - rank) micro-batches.

The gradients of a batch are those of the whole batch (each micro-batch's loss is weighted
by its share of the batch), so an optimizer on each rank's own parameters
(``Pipeline.parameters()``) takes the same step as one process training the whole model.

    pipe = Pipeline(model, chunks=4)                 # split balanced by parameter count
    opt = cn.optim.SGD(pipe.parameters(), lr=0.01)  # this rank's stage only
    opt.zero_grad(); loss = pipe.step(x, y, F.cross_entropy); opt.step()
"""

from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..nn.module import Module, Sequential
from ..tensor import Tensor
from ._group import _get, wait_requests

_HEADER = 9  # ndim + up to 8 dimensions


def balanced_split_points(module: Sequential, stages: int) -> list[int]:
    """Indices where stages 1.. start, so that the stages' parameter counts are as even as
    a cut between layers allows (each stage gets at least one layer)."""
    layers = list(module)
    if stages < 1 or stages > len(layers):
        raise ValueError(f"stages: expected 1..{len(layers)} (one layer at least per stage), "
                         f"got {stages}")
    counts = np.array([sum(p.numel() for p in m.parameters()) for m in layers], np.float64)
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    total = cum[-1]
    points, lo = [], 1
    for s in range(1, stages):
        hi = len(layers) - (stages - s)  # leave a layer for each later stage
        target = total * s / stages
        best = min(range(lo, hi + 1), key=lambda k: (abs(cum[k] - target), k))
        points.append(best)
        lo = best + 1
    return points


class Pipeline(Module):
    """This rank's stage of ``module`` (an ``nn.Sequential``) in a pipeline over all ranks;
    see the module docstring. ``split_points`` (len world_size - 1, increasing) gives where
    stages 1.. start; by default they balance the parameter counts."""

    def __init__(self, module: Sequential, chunks: int = 4, split_points=None,
                 schedule: str = "gpipe"):
        super().__init__()
        if not isinstance(module, Sequential):
            raise TypeError(f"module: expected an nn.Sequential, got {type(module).__name__}")
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
            raise ValueError(f"chunks: expected a positive integer, got {chunks!r}")
        if schedule not in ("gpipe", "1f1b"):
            raise ValueError(f"schedule: expected 'gpipe' or '1f1b', got {schedule!r}")
        g = _get()
        self._comm, self.rank, self.stages = g.comm, g.rank, g.size
        layers = list(module)
        if split_points is None:
            split_points = balanced_split_points(module, self.stages)
        split_points = [int(p) for p in split_points]
        bounds = [0, *split_points, len(layers)]
        if len(split_points) != self.stages - 1 or any(
                a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ValueError(f"split_points: expected {self.stages - 1} increasing indices in "
                             f"1..{len(layers) - 1}, got {split_points}")
        self.bounds = bounds
        self.chunks, self.schedule = chunks, schedule
        # only this rank's layers are kept: the others' memory is released
        self.stage = Sequential(*layers[bounds[self.rank]:bounds[self.rank + 1]])
        self._sends: list = []

    @property
    def is_first(self) -> bool:
        return self.rank == 0

    @property
    def is_last(self) -> bool:
        return self.rank == self.stages - 1

    # ------------------------------------------------------------------ messages
    def _send(self, array, dest: int, tag: int) -> None:
        array = np.ascontiguousarray(array)
        header = np.zeros(_HEADER, np.int64)
        header[0] = array.ndim
        header[1:1 + array.ndim] = array.shape
        # kept alive (with their requests) until the step's end
        self._sends.append((header, array, self._comm.Isend(header, dest, tag),
                            self._comm.Isend(array, dest, tag + 1)))

    def _recv(self, source: int, tag: int, dtype) -> np.ndarray:
        header = np.empty(_HEADER, np.int64)
        wait_requests([self._comm.Irecv(header, source, tag)], "pipeline recv")
        out = np.empty(tuple(header[1:1 + header[0]]), dtype)
        wait_requests([self._comm.Irecv(out, source, tag + 1)], "pipeline recv")
        return out

    @staticmethod
    def _tag(micro: int, backward: bool) -> int:
        return 4 * micro + (2 if backward else 0)

    # ------------------------------------------------------------------ schedule
    def step(self, x, target, loss_fn) -> float:
        """Forward and backward of one batch through the pipeline; gradients accumulate in
        this rank's parameters' ``.grad``. Every rank passes the same ``x`` and ``target``
        (the first rank reads x, the last the targets). Returns the batch's mean loss, on
        every rank."""
        n = len(x)
        if n < self.chunks:
            raise ValueError(f"x: a batch of {n} cannot make {self.chunks} micro-batches")
        cuts = np.array_split(np.arange(n), self.chunks)
        dtype = np.dtype(x.dtype)
        saved: dict[int, tuple] = {}
        losses = np.zeros(1, np.float64)

        def forward(m):
            idx = cuts[m]
            if self.is_first:
                inp = x[int(idx[0]):int(idx[-1]) + 1]
            else:
                inp = Tensor(self._recv(self.rank - 1, self._tag(m, False), dtype),
                             requires_grad=True)
            out = self.stage(inp)
            if self.is_last:
                t = target[int(idx[0]):int(idx[-1]) + 1]
                loss = loss_fn(out, t)
                losses[0] += float(loss.item()) * len(idx) / n
                out = loss * (len(idx) / n)  # the micro-batch's share of the batch mean
            else:
                self._send(out._data, self.rank + 1, self._tag(m, False))
            saved[m] = (inp, out)

        def backward(m):
            inp, out = saved.pop(m)
            if self.is_last:
                out.backward()
            else:
                grad = self._recv(self.rank + 1, self._tag(m, True), out.dtype)
                out.backward(Tensor(grad))
            if not self.is_first:
                self._send(inp.grad._data, self.rank - 1, self._tag(m, True))

        if self.schedule == "gpipe":
            for m in range(self.chunks):
                forward(m)
            for m in reversed(range(self.chunks)):
                backward(m)
        else:
            warmup = min(self.stages - self.rank - 1, self.chunks)
            for m in range(warmup):
                forward(m)
            for m in range(warmup, self.chunks):
                forward(m)
                backward(m - warmup)
            for m in range(self.chunks - warmup, self.chunks):
                backward(m)
        self._finish_sends()
        # the loss lives on the last rank: give it to all
        self._bcast_from_last(losses)
        return float(losses[0])

    def _finish_sends(self) -> None:
        if self._sends:
            wait_requests([r for s in self._sends for r in s[2:]], "pipeline send")
        self._sends = []

    def _bcast_from_last(self, array) -> None:
        wait_requests([self._comm.Ibcast(array, root=self.stages - 1)], "pipeline broadcast")

    def forward(self, x):
        """Inference through all stages (no graph); the output comes back on every rank."""
        with no_grad():
            if self.is_first:
                h = self.stage(x)._data
            else:
                h = self.stage(Tensor(self._recv(self.rank - 1, 30000,
                                                 np.dtype(x.dtype))))._data
            if not self.is_last:
                self._send(h, self.rank + 1, 30000)
            self._finish_sends()
            shape = np.zeros(_HEADER, np.int64)
            if self.is_last:
                shape[0], shape[1:1 + h.ndim] = h.ndim, h.shape
            self._bcast_from_last(shape)
            out = h if self.is_last else np.empty(tuple(shape[1:1 + shape[0]]), h.dtype)
            out = np.ascontiguousarray(out)
            self._bcast_from_last(out)
        return Tensor(out)


__all__ = ["Pipeline", "balanced_split_points"]
