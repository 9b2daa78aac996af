"""fit() on 2 ranks (DDP, sharded loader) against fit() in one process on the same data."""

import json

import numpy as np

import convnet as cn
import convnet.distributed as dist
from convnet import nn
from convnet.data import DataLoader
from convnet.train import fit

rng = np.random.default_rng(4)
x = rng.standard_normal((256, 10)).astype(np.float32)
y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + 2 * (x[:, 3] > 0)


class Data:
    def __len__(self):
        return len(x)

    def __getitem__(self, i):
        return x[i], y[i]


def model():
    cn.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))


def loader():
    return DataLoader(Data(), batch_size=64, shuffle=True, seed=3, prefetch=0)


ref = model()
ref_hist = fit(ref, loader(), loader(), epochs=2, progress=False, log=lambda m: None,
               optimizer=cn.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9))

dist.init_process_group("mpi", timeout=120)
rank = dist.get_rank()
logged = []
m = model()
ddp = nn.parallel.DistributedDataParallel(m)
hist = fit(ddp, dist.shard_loader(loader()), dist.shard_loader(loader()), epochs=2,
           progress=True, log=logged.append,
           optimizer=cn.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9))
err = max(float(np.abs(p._data - q._data).max()) for p, q in zip(m.parameters(),
                                                               ref.parameters(), strict=True))
keys = ("loss", "accuracy", "val_loss", "val_accuracy")
print("RESULT " + json.dumps({
    "rank": rank, "param_error": err, "logged": len(logged),
    "history_error": max(abs(a - b) for k in keys for a, b in zip(hist[k], ref_hist[k],
                                                                   strict=True)),
    "history": {k: hist[k] for k in keys}}), flush=True)
dist.destroy_process_group()
