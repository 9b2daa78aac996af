"""The course's AlexNet (or VGG-11) split over two processes: pipeline model parallelism.

    python -m convnet.examples.pipeline [--model alexnet|vgg11] [--steps 3] [--batch 16]
                                        [--chunks 4] [--size 63] [--schedule gpipe|1f1b]

Runs the same training twice, each in fresh processes: once in one process holding the
whole model, once as a 2-stage pipeline (``mpiexec -n 2``, split balanced by parameter
count), on the same batches; then prints each rank's layers, parameters and peak memory
against the single process, and the largest difference of the trained parameters
(dropout is off so that the two runs compute the same function). Peak memory is what
tracemalloc sees: every NumPy array (parameters, gradients, optimizer state,
activations) from the end of the model's construction (the pipeline builds the whole
model, then keeps its stage), not the interpreter or the kernels' scratch buffers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np


def build(name: str, size: int):
    import convnet as cn
    from convnet import nn
    from convnet.models import alexnet, vgg11

    cn.manual_seed(0)
    if name == "alexnet":
        m = alexnet(num_classes=10, in_channels=3, dropout=0.0)
    else:
        m = vgg11(num_classes=10, in_channels=3, dropout=0.0)
    return nn.Sequential(*m.features, m.avgpool, nn.Flatten(), *m.classifier)


def batches(args):
    rng = np.random.default_rng(0)
    for _ in range(args.steps):
        yield (rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32),
               rng.integers(0, 10, args.batch))


def run(args, pipeline: bool) -> None:
    import gc

    import convnet as cn
    import convnet.functional as F

    tracemalloc.start()
    model = build(args.model, args.size)
    rank = 0
    if pipeline:
        import convnet.distributed as dist
        from convnet.distributed.pipeline import Pipeline

        dist.init_process_group("mpi")
        rank = dist.get_rank()
        model = Pipeline(model, chunks=args.chunks, schedule=args.schedule)
    # the peak from here: the layers this process does not hold are released by now
    gc.collect()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    opt = cn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses, t0 = [], time.perf_counter()
    for x, y in batches(args):
        x, y = cn.tensor(x), cn.tensor(y)
        opt.zero_grad()
        if pipeline:
            losses.append(model.step(x, y, F.cross_entropy))
        else:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            losses.append(float(loss.item()))
        opt.step()
    seconds = (time.perf_counter() - t0) / args.steps
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    params = {f"p{i}": p._data for i, p in enumerate(model.parameters())}
    np.savez(os.path.join(args.out, f"{'pipe' if pipeline else 'single'}{rank}.npz"), **params)
    info = {"rank": rank, "losses": losses, "peak_mb": peak / 2**20, "seconds": seconds,
            "params": int(sum(p.numel() for p in model.parameters())),
            "held_mb_at_start": base / 2**20,
            "layers": model.bounds[rank:rank + 2] if pipeline else [0, len(model)]}
    with open(os.path.join(args.out, f"{'pipe' if pipeline else 'single'}{rank}.json"),
              "w") as f:
        json.dump(info, f)


def main(argv=None):
    ap = argparse.ArgumentParser(description="AlexNet/VGG-11 as a 2-process pipeline")
    ap.add_argument("--model", choices=["alexnet", "vgg11"], default="alexnet")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--size", type=int, default=63, help="image side (AlexNet: >= 63)")
    ap.add_argument("--schedule", choices=["gpipe", "1f1b"], default="gpipe")
    ap.add_argument("--role", choices=["single", "pipe"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role:
        return run(args, args.role == "pipe")
    mpiexec = shutil.which("mpiexec") or shutil.which(
        "mpiexec", path=os.path.dirname(sys.executable))
    if mpiexec is None:
        raise SystemExit("mpiexec not found: pip install convnet[distributed]")
    out = tempfile.mkdtemp(prefix="convnet-pipeline-")
    me = [sys.executable, "-m", "convnet.examples.pipeline", "--model", args.model,
          "--steps", str(args.steps), "--batch", str(args.batch), "--chunks",
          str(args.chunks), "--size", str(args.size), "--schedule", args.schedule,
          "--out", out]
    env = dict(os.environ)
    env.setdefault("CONVNET_NUM_THREADS", "1")  # 2 ranks x 1 thread on 2 cores
    print(f"{args.model}, batch {args.batch} of {args.size}x{args.size} images, "
          f"{args.chunks} micro-batches ({args.schedule}), {args.steps} SGD steps")
    for cmd in (me + ["--role", "single"], [mpiexec, "-n", "2"] + me + ["--role", "pipe"]):
        subprocess.run(cmd, check=True, env=env)
    res = {name: json.load(open(os.path.join(out, f"{name}.json")))
           for name in ("single0", "pipe0", "pipe1")}
    single = np.load(os.path.join(out, "single0.npz"))
    ref = [single[f"p{i}"] for i in range(len(single.files))]
    stages = [np.load(os.path.join(out, f"pipe{r}.npz")) for r in (0, 1)]
    mine = [s[f"p{i}"] for s in stages for i in range(len(s.files))]
    err = max(float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))
              for a, b in zip(mine, ref, strict=True))
    loss_err = max(abs(a - b) for a, b in zip(res["pipe0"]["losses"],
                                              res["single0"]["losses"], strict=True))
    print(f"\n{'process':14} {'layers':>8} {'parameters':>12} {'peak MB':>9} {'s/step':>7}")
    for name, label in (("single0", "one process"), ("pipe0", "rank 0"),
                        ("pipe1", "rank 1")):
        r = res[name]
        print(f"{label:14} {r['layers'][0]:>3}..{r['layers'][1] - 1:<3} {r['params']:12,} "
              f"{r['peak_mb']:9.1f} {r['seconds']:7.2f}")
    print(f"\nlargest parameter difference after {args.steps} steps (relative): {err:.2e}; "
          f"largest loss difference: {loss_err:.2e}")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
