"""Sharding a :class:`convnet.data.DataLoader` over the ranks.

``shard_loader(loader)`` gives each rank its part of every global batch: the loader's
order (and seed) is the same on every rank, and a :class:`DistributedSampler` (no
shuffling of its own, padding an uneven batch) picks the rank's samples from each batch.
An unseeded shuffling loader gets rank 0's random seed, so that all ranks agree. So
``mpiexec -n 2`` with ``--batch-size 128`` trains on the same batches of 128 as one
process, 64 samples per rank, and every rank runs the same number of steps.
"""

from __future__ import annotations

import copy

import numpy as np

from ..utils.data.distributed import DistributedSampler
from ._group import _get


class _ShardedPlan:
    def __init__(self, loader, rank: int, world: int):
        self.loader, self.rank, self.world = loader, rank, world

    def __call__(self):
        # the class's plan on the copy: set_epoch on the copy picks the epoch
        plan = type(self.loader)._epoch_plan(self.loader)
        for batch in plan:
            b = batch.indices
            batch.indices = b[DistributedSampler(b, self.world, self.rank,
                                                 shuffle=False).indices()]
        return plan


def shard_loader(loader, rank: int | None = None, world_size: int | None = None):
    """A copy of ``loader`` that yields this rank's share of each batch."""
    if not hasattr(loader, "_epoch_plan"):
        raise TypeError(f"loader: expected a convnet.data.DataLoader, got "
                        f"{type(loader).__name__}")
    out = copy.copy(loader)
    if rank is None or world_size is None:
        g = _get()
        rank = g.rank if rank is None else rank
        world_size = g.size if world_size is None else world_size
        if getattr(out, "shuffle", False) and out.seed is None:
            # an unseeded loader draws its order from each process's own generator: the
            # ranks would shuffle differently and train on overlapping samples
            from .collectives import broadcast_object_list

            seed = [int(np.random.SeedSequence().entropy % 2**63)]
            broadcast_object_list(seed, src=0)
            out.seed = seed[0]
    out._epoch_plan = _ShardedPlan(out, rank, world_size)
    out.sharded = (rank, world_size)
    return out
