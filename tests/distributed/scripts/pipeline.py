"""A small AlexNet-shaped Sequential trained as a 2-stage pipeline against one process
training the whole model on the whole batch (each rank also trains the reference)."""

import json
import sys

import numpy as np

import convnet as cn
import convnet.distributed as dist
import convnet.functional as F
from convnet import nn
from convnet.distributed.pipeline import Pipeline, balanced_split_points

schedule, chunks, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
split = None if sys.argv[4] == "balanced" else [int(sys.argv[4])]


def build():
    cn.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


dist.init_process_group("mpi", timeout=120)
rank = dist.get_rank()
pipe = Pipeline(build(), chunks=chunks, split_points=split, schedule=schedule)
ref = build()
opt = cn.optim.SGD(pipe.parameters(), lr=0.05, momentum=0.9)
ref_opt = cn.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
rng = np.random.default_rng(2)
mine = list(range(pipe.bounds[rank], pipe.bounds[rank + 1]))
errors, loss_errors = [], []
for _ in range(steps):
    x = cn.tensor(rng.standard_normal((12, 1, 24, 24)).astype(np.float32))
    y = cn.tensor(rng.integers(0, 10, 12))
    opt.zero_grad()
    loss = pipe.step(x, y, F.cross_entropy)
    opt.step()
    ref_opt.zero_grad()
    ref_loss = F.cross_entropy(ref(x), y)
    ref_loss.backward()
    ref_opt.step()
    loss_errors.append(abs(loss - float(ref_loss.item())))
    ref_params = [p for i in mine for p in ref[i].parameters()]
    errors.append(max(float(np.abs(p._data - q._data).max() / max(1.0, np.abs(q._data).max()))
                      for p, q in zip(pipe.parameters(), ref_params, strict=True)))
x = cn.tensor(rng.standard_normal((5, 1, 24, 24)).astype(np.float32))
out = pipe(x)
with cn.no_grad():
    ref_out = ref(x)
n_mine = sum(p.numel() for p in pipe.parameters())
n_all = sum(p.numel() for p in ref.parameters())
print("RESULT " + json.dumps({
    "rank": rank, "bounds": pipe.bounds, "errors": errors, "loss_errors": loss_errors,
    "forward_error": float(np.abs(out._data - ref_out._data).max()),
    "param_share": n_mine / n_all,
    "balanced": balanced_split_points(build(), 2)}), flush=True)
dist.destroy_process_group()
