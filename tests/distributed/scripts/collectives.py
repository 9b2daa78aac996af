"""Every collective on 2+ ranks, on Tensors and arrays; prints what each rank got."""

import json

import numpy as np

import convnet as cn
import convnet.distributed as dist

dist.init_process_group("mpi", timeout=60)
rank, world = dist.get_rank(), dist.get_world_size()
out = {"rank": rank, "world": world, "initialized": dist.is_initialized()}

t = cn.tensor(np.arange(5, dtype=np.float32) * (rank + 1))
storage = t._data
dist.all_reduce(t)
out["sum"] = t._data.tolist()
out["in_place"] = t._data is storage
for op in ("AVG", "MAX", "MIN", "PRODUCT"):
    a = np.array([rank + 1.0, -(rank + 1.0), 2.0 * rank], np.float64)
    dist.all_reduce(a, op=getattr(dist.ReduceOp, op))
    out[op] = a.tolist()
h = np.full(3, 0.25 * (rank + 1), np.float16)
dist.all_reduce(h)
out["float16"] = [h.dtype.name, h.tolist()]
nc = (np.arange(12.0).reshape(3, 4) * (rank + 1))[:, ::2]
dist.all_reduce(nc)
out["strided"] = nc.tolist()
b = cn.tensor(np.full((2, 2), float(rank), np.float32))
dist.broadcast(b, src=world - 1)
out["broadcast"] = b._data.tolist()
parts = [cn.tensor(np.zeros(3, np.float32)) for _ in range(world)]
dist.all_gather(parts, cn.tensor(np.arange(3, dtype=np.float32) + 10 * rank))
out["all_gather"] = [p._data.tolist() for p in parts]
o = cn.tensor(np.zeros(2, np.float32))
dist.reduce_scatter(o, [np.full(2, 100.0 * i + rank, np.float32) for i in range(world)])
out["reduce_scatter"] = o._data.tolist()
w = dist.all_reduce(np.ones(4) * rank, async_op=True)
out["async"] = [type(w).__name__, w.wait()]
dist.barrier()
objs = [None] * world
dist.all_gather_object(objs, {"rank": rank})
out["objects"] = objs
lst = [rank, "x"] if rank == 0 else [None, None]
dist.broadcast_object_list(lst, src=0)
out["broadcast_objects"] = lst
errors = {}
for name, call in (("op", lambda: dist.all_reduce(np.ones(2), op="mean")),
                   ("avg_int", lambda: dist.all_reduce(np.ones(2, np.int64),
                                                       op=dist.ReduceOp.AVG)),
                   ("src", lambda: dist.broadcast(np.ones(2), src=world)),
                   ("list", lambda: dist.all_gather([np.ones(2)], np.ones(2))),
                   ("type", lambda: dist.all_reduce([1.0, 2.0]))):
    try:
        call()
        errors[name] = None
    except (ValueError, TypeError) as exc:
        errors[name] = [type(exc).__name__, str(exc)]
out["errors"] = errors
# an unseeded shuffling loader: the shards must still split one order
from convnet.data import DataLoader  # noqa: E402

data = (np.arange(20, dtype=np.float32)[:, None], np.arange(20))


class Pairs:
    def __len__(self):
        return 20

    def __getitem__(self, i):
        return data[0][i], data[1][i]


loader = dist.shard_loader(DataLoader(Pairs(), batch_size=10, shuffle=True, prefetch=0))
mine = [int(v) for _, y in loader for v in y._data]
everyone = [None] * world
dist.all_gather_object(everyone, mine)
out["unseeded_shards"] = everyone
dist.destroy_process_group()
out["after_destroy"] = dist.is_initialized()
print("RESULT " + json.dumps(out), flush=True)
