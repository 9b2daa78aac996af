"""2 ranks x batch B/2 with DistributedDataParallel against 1 process x batch B, step
after step (run on 2 ranks; rank 0 also trains the single-process reference)."""

import json
import sys

import numpy as np

import convnet as cn
import convnet.distributed as dist
import convnet.functional as F
from convnet import nn
from convnet.models import lenet5, resnet20

NAME, STEPS = sys.argv[1], int(sys.argv[2])
BATCH = 128


def build():
    cn.manual_seed(0)
    if NAME == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32),
                             nn.Tanh(), nn.Linear(32, 10)), (1, 8, 8)
    if NAME == "lenet":
        return lenet5(), (1, 28, 28)
    if NAME == "resnet":
        return resnet20(width=4), (3, 12, 12)
    raise SystemExit(f"unknown model {NAME}")


dist.init_process_group("mpi", timeout=200)
rank, world = dist.get_rank(), dist.get_world_size()
model, shape = build()
ref, _ = build()
if NAME == "resnet":
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # The reference runs the same batch-norm arithmetic (float64 statistics) on the whole
    # batch: every rank trains it on all 128 samples, so its all-reduced statistics are
    # exactly those of one process. Against float32 BatchNorm2d the runs part after a step
    # or two, when a ReLU input within rounding of 0 flips sign (seen: 1e-7, then 4e-4).
    ref = nn.SyncBatchNorm.convert_sync_batchnorm(ref)
# a different start on rank 1: DDP must replace it with rank 0's parameters
if rank == 1:
    for p in model.parameters():
        p._data += 1.0
ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.002)
opt = cn.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
ref_opt = cn.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
rng = np.random.default_rng(1)
per = BATCH // world
errors, worst_grad = [], 0.0
for _ in range(STEPS):
    x = rng.standard_normal((BATCH,) + shape).astype(np.float32)
    y = rng.integers(0, 10, BATCH)
    xs, ys = cn.tensor(x[rank * per:(rank + 1) * per]), cn.tensor(y[rank * per:(rank + 1) * per])
    opt.zero_grad()
    loss = F.cross_entropy(ddp(xs), ys)
    loss.backward()
    opt.step()
    ref_opt.zero_grad()
    F.cross_entropy(ref(cn.tensor(x)), cn.tensor(y)).backward()
    for p, q in zip(ddp.module.parameters(), ref.parameters(), strict=True):
        scale = max(1.0, float(np.abs(q.grad._data).max()))
        worst_grad = max(worst_grad, float(np.abs(p.grad._data - q.grad._data).max()) / scale)
    ref_opt.step()
    err = 0.0
    for p, q in zip(ddp.module.parameters(), ref.parameters(), strict=True):
        scale = max(1.0, float(np.abs(q._data).max()))
        err = max(err, float(np.abs(p._data - q._data).max()) / scale)
    errors.append(err)

state = {k: v.numpy() for k, v in ddp.module.state_dict().items()}
flat = np.concatenate([v.ravel().astype(np.float64) for v in state.values()])
gathered = [np.zeros_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
ref_state = {k: v.numpy() for k, v in ref.state_dict().items()}
# running_var is not compared: the duplicated reference batch makes its unbiased factor
# 256/255 instead of 128/127
buf_err = max((float(np.abs(state[k].astype(np.float64) - ref_state[k]).max())
               for k in state if "running_mean" in k), default=0.0)
print("RESULT " + json.dumps({
    "rank": rank, "errors": errors, "grad_error": worst_grad, "buffer_error": buf_err,
    "ranks_identical": all(np.array_equal(gathered[0], g) for g in gathered),
    "buckets": len(ddp._buckets)}), flush=True)
dist.destroy_process_group()
