"""Training on several processes over MPI (mpi4py), with ``torch.distributed``'s names.

Start the ranks with ``mpiexec -n 2 python train.py`` (or ``convnet train --distributed``),
then in each::

    import convnet.distributed as dist
    dist.init_process_group("mpi")
    model = cn.nn.parallel.DistributedDataParallel(model)

Collectives work on Tensors (in place) and NumPy/CuPy arrays. A rank that fails takes
the others down with it (``MPI_Abort``) and a collective whose peers never arrive raises
:class:`DistributedTimeoutError` after the group's timeout. Pipeline model parallelism
is in :mod:`convnet.distributed.pipeline`.
"""

from ._group import (
    DistributedTimeoutError,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
)
from .collectives import (
    ReduceOp,
    Work,
    all_gather,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
    reduce_scatter,
)
from .data import shard_loader

__all__ = [
    "DistributedTimeoutError", "ReduceOp", "Work", "all_gather", "all_gather_object",
    "all_reduce", "barrier", "broadcast", "broadcast_object_list", "destroy_process_group",
    "get_backend", "get_rank", "get_world_size", "init_process_group", "is_available",
    "is_initialized", "reduce_scatter", "shard_loader",
]
