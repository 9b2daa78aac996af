"""SyncBatchNorm on 2 ranks, each with half of a batch, against BatchNorm on the whole
batch in float64 (forward, running statistics, input/weight/bias gradients)."""

import json
import sys

import numpy as np

import convnet as cn
import convnet.distributed as dist
from convnet import nn

dist.init_process_group("mpi", timeout=120)
rank, world = dist.get_rank(), dist.get_world_size()
shape = tuple(int(s) for s in sys.argv[1].split("x"))  # whole batch, e.g. 6x3x5x4
n, c = shape[:2]
rng = np.random.default_rng(7)
x = (rng.standard_normal(shape) * 3 + 1.5).astype(np.float32)
g = rng.standard_normal(shape).astype(np.float32)
w0 = rng.standard_normal(c).astype(np.float32)
b0 = rng.standard_normal(c).astype(np.float32)
per = n // world
part = slice(rank * per, (rank + 1) * per)

sbn = nn.SyncBatchNorm(c, momentum=0.3)
sbn.weight._data[...] = w0
sbn.bias._data[...] = b0
xs = cn.tensor(x[part], requires_grad=True)
ys = sbn(xs)
# each rank's loss is its share of the whole batch's sum(y * g)
ys.backward(cn.tensor(g[part]))

bn = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(c, momentum=0.3).double()
bn.weight._data[...] = w0
bn.bias._data[...] = b0
xr = cn.tensor(x.astype(np.float64), requires_grad=True)
yr = bn(xr)
yr.backward(cn.tensor(g.astype(np.float64)))


def err(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(1.0, np.abs(b).max()))


# plain batch norm on the rank's half alone: what SyncBatchNorm must not give
lbn = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(c)
lbn.weight._data[...] = w0
lbn.bias._data[...] = b0
xl = cn.tensor(x[part], requires_grad=True)
yl = lbn(xl)
yl.backward(cn.tensor(g[part]))
local_y = err(yl._data, yr._data[part])
local_dx = err(xl.grad._data, xr.grad._data[part])

# weight/bias gradients are per-rank sums: their all-reduced sum is the whole batch's
dw, db = sbn.weight.grad._data.copy(), sbn.bias.grad._data.copy()
dist.all_reduce(dw)
dist.all_reduce(db)
print("RESULT " + json.dumps({
    "rank": rank,
    "y": err(ys._data, yr._data[part]), "dx": err(xs.grad._data, xr.grad._data[part]),
    "dw": err(dw, bn.weight.grad._data), "db": err(db, bn.bias.grad._data),
    "running_mean": err(sbn.running_mean._data, bn.running_mean._data),
    "running_var": err(sbn.running_var._data, bn.running_var._data),
    "local_bn_dx": local_dx, "local_bn_y": local_y}), flush=True)
dist.destroy_process_group()
