"""DistributedDataParallel on 2 ranks: overlap order, no_sync, unused parameters."""

import json

import numpy as np

import convnet as cn
import convnet.distributed as dist
import convnet.functional as F
from convnet import nn

dist.init_process_group("mpi", timeout=120)
rank, world = dist.get_rank(), dist.get_world_size()
out = {"rank": rank}
rng = np.random.default_rng(3)


def mlp():
    cn.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 40), nn.Tanh(), nn.Linear(40, 30), nn.Tanh(),
                         nn.Linear(30, 4))


# 1. overlap: when the first layer's weight (the last gradient backward produces) is
# ready, the buckets of the later layers have already started their all-reduce
model = mlp()
first = model[0].weight
seen = {}


def spy(p):
    seen["started_before_last"] = [b.work is not None for b in ddp._buckets]


first.register_post_accumulate_grad_hook(spy)  # registered first: runs before DDP's hook
ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.001)
x = cn.tensor(rng.standard_normal((8, 6)).astype(np.float32))
F.mse_loss(ddp(x), cn.tensor(np.zeros((8, 4), np.float32))).backward()
out["buckets"] = len(ddp._buckets)
out["started_before_last"] = seen["started_before_last"]
out["bucket_sizes"] = [len(b.params) for b in ddp._buckets]

# 2. no_sync: local accumulation, then one synchronised backward reduces the sum
model = mlp()
ddp = nn.parallel.DistributedDataParallel(model)
xa = rng.standard_normal((2, 8, 6)).astype(np.float32)  # two micro-batches per rank
ya = rng.standard_normal((2, 8, 4)).astype(np.float32)
xa += rank  # ranks see different data
ya -= rank
with ddp.no_sync():
    F.mse_loss(ddp(cn.tensor(xa[0])), cn.tensor(ya[0])).backward()
local_after_first = model[0].weight.grad._data.copy()
F.mse_loss(ddp(cn.tensor(xa[1])), cn.tensor(ya[1])).backward()
synced = model[0].weight.grad._data.copy()
ref = mlp()
for k in range(2):
    F.mse_loss(ref(cn.tensor(xa[k])), cn.tensor(ya[k])).backward()
local_sum = ref[0].weight.grad._data.copy()
mine = local_sum.copy()
dist.all_reduce(mine, op=dist.ReduceOp.AVG)
first_only = mlp()
F.mse_loss(first_only(cn.tensor(xa[0])), cn.tensor(ya[0])).backward()
out["no_sync_kept_local"] = float(np.abs(local_after_first
                                         - first_only[0].weight.grad._data).max())
out["no_sync_then_sync_error"] = float(np.abs(synced - mine).max())
out["no_sync_differs_from_local"] = float(np.abs(synced - local_sum).max())


# 3. unused parameters
class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        cn.manual_seed(1)
        self.a = nn.Linear(3, 2)
        self.b = nn.Linear(3, 2)  # used on rank 1 only
        self.c = nn.Linear(3, 2)  # never used

    def forward(self, x):
        y = self.a(x)
        return y + self.b(x) if dist.get_rank() == 1 else y


xb = cn.tensor(np.ones((4, 3), np.float32) * (rank + 1))
m = Branchy()
ddp = nn.parallel.DistributedDataParallel(m, find_unused_parameters=True)
ddp(xb).sum().backward()
b_local = Branchy()
b_local(xb).sum().backward()
expect_b = b_local.b.weight.grad._data / 2 if rank == 1 else None
gathered = [np.zeros((2, 3), np.float32) for _ in range(world)]
dist.all_gather(gathered, m.b.weight.grad._data)
out["unused_b_grad"] = m.b.weight.grad._data.tolist()
out["unused_b_expected_on_rank1"] = None if expect_b is None else expect_b.tolist()
out["unused_c_grad_is_none"] = m.c.weight.grad is None
out["unused_b_same_on_ranks"] = bool(np.array_equal(gathered[0], gathered[1]))
# a second iteration works as well (the state is reset)
ddp.zero_grad()
ddp(xb).sum().backward()
out["unused_second_step"] = m.b.weight.grad._data.tolist()

# without find_unused_parameters the next forward says what went wrong
m = Branchy()
ddp = nn.parallel.DistributedDataParallel(m)
ddp(xb).sum().backward()
try:
    ddp(xb)
    out["unused_error"] = None
except RuntimeError as exc:
    out["unused_error"] = str(exc)
print("RESULT " + json.dumps(out), flush=True)
dist.barrier()
# the first error leaves ranks in different states (rank 1 finished its reduction):
# end without touching DDP again
dist.destroy_process_group()
