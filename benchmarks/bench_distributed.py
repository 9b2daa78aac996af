"""Data-parallel training over MPI, measured: per-step time, overlap, wrapper overhead.

    python benchmarks/bench_distributed.py [--steps N] [--quick]

Starts its own ranks (``mpiexec``) and prints a table last:

1. Per-step time (forward, backward, SGD step) of LeNet-5 and ResNet-20 on a global batch
   of 128 (ResNet-20: 64) Fashion-MNIST-sized images: 1 rank x 2 threads against 2 ranks x
   1 thread (DistributedDataParallel, 64 (32) images per rank).
2. Overlap: on 2 ranks, the step with DDP's bucketed all-reduce started during backward,
   against the same step with the gradients all-reduced after backward (one flat
   all-reduce), and against the step without communication (``no_sync``):
   hidden = 1 - (overlapped - no_comm) / (after_backward - no_comm); and, timed directly
   (less exposed to the machine's load), the flat all-reduce after backward against the
   wait still left at the end of DDP's backward (``comm_wait_seconds``).
3. All-reduce of float32 buffers through ``convnet.distributed.all_reduce`` against
   mpi4py's own ``Allreduce`` on the same buffer: time, bandwidth, overhead.

Each figure is the median over the timed repeats after warm-up. Targets (DESIGN.md):
overlap hides at least half of the communication; the wrapper adds under 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = {"lenet5": (128, (1, 28, 28)), "resnet20": (64, (1, 28, 28))}


def _model(name):
    import convnet as cn
    from convnet.models import lenet5, resnet20

    cn.manual_seed(0)
    if name == "lenet5":
        return lenet5()
    return resnet20(in_channels=1)


def _batch(name, rank, world):
    import convnet as cn

    batch, shape = MODELS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch)
    per = batch // world
    return cn.tensor(x[rank * per:(rank + 1) * per]), cn.tensor(y[rank * per:(rank + 1) * per])


def _time_steps(step, steps, warmup=2):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _single_step_time(name, steps):
    import convnet as cn
    import convnet.functional as F

    model = _model(name)
    opt = cn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = _batch(name, 0, 1)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return _time_steps(step, steps)


def worker_single(args):
    out = {name: _single_step_time(name, args.steps) for name in MODELS}
    print("RESULT " + json.dumps(out), flush=True)


def _ddp_step_times(name, args):
    import convnet as cn
    import convnet.distributed as dist
    import convnet.functional as F
    from convnet import nn

    rank, world = dist.get_rank(), dist.get_world_size()
    model = _model(name)
    if name == "resnet20":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = cn.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    params = list(model.parameters())
    x, y = _batch(name, rank, world)
    comm = {"after": 0.0, "after_n": 0, "exposed": 0.0, "exposed_n": 0}

    def overlapped():
        before = ddp.comm_wait_seconds
        comm["exposed_n"] += 1
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        comm["exposed"] += ddp.comm_wait_seconds - before
        opt.step()

    def no_comm():
        opt.zero_grad()
        with ddp.no_sync():
            F.cross_entropy(ddp(x), y).backward()
        opt.step()

    def after_backward():
        opt.zero_grad()
        with ddp.no_sync():
            F.cross_entropy(ddp(x), y).backward()
        flat = np.concatenate([p.grad._data.ravel() for p in params])
        t0 = time.perf_counter()
        dist.all_reduce(flat, op=dist.ReduceOp.AVG)
        comm["after"] += time.perf_counter() - t0
        comm["after_n"] += 1
        o = 0
        for p in params:
            n = p.numel()
            p.grad._data[...] = flat[o:o + n].reshape(p.shape)
            o += n
        opt.step()

    # interleaved rounds, so that a change of load on the machine hits all three
    res = {"overlapped": [], "no_comm": [], "after_backward": []}
    for _ in range(args.rounds):
        for key, fn in (("overlapped", overlapped), ("no_comm", no_comm),
                        ("after_backward", after_backward)):
            dist.barrier()
            res[key].append(_time_steps(fn, args.steps, warmup=1))
    med = {k: float(np.median(v)) for k, v in res.items()}
    med["grad_mb"] = sum(p._data.nbytes for p in params) / 2**20
    # direct timings: the flat all-reduce after backward, and what DDP's backward still
    # waited for at its end (means over all the calls, warm-up included)
    med["comm_after"] = comm["after"] / max(comm["after_n"], 1)
    med["comm_exposed"] = comm["exposed"] / max(comm["exposed_n"], 1)
    return med


def _allreduce_times(size, rounds):
    from mpi4py import MPI

    import convnet.distributed as dist

    comm = MPI.COMM_WORLD
    buf = np.ones(size, np.float32)
    reps = max(5, min(200, int(2e7 // max(size, 1))))

    def ours():
        dist.all_reduce(buf)

    def raw():
        comm.Allreduce(MPI.IN_PLACE, buf)

    t_ours, t_raw = [], []
    for _ in range(rounds):
        for fn, acc in ((ours, t_ours), (raw, t_raw)):
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            acc.append((time.perf_counter() - t0) / reps)
    return {"floats": size, "ours": float(np.median(t_ours)), "raw": float(np.median(t_raw))}


def worker_ddp(args):
    import convnet.distributed as dist

    dist.init_process_group("mpi", timeout=600)
    out = {"models": {name: _ddp_step_times(name, args) for name in MODELS},
           "allreduce": [_allreduce_times(size, args.rounds) for size in args.sizes]}
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps(out), flush=True)
    dist.destroy_process_group()


def _run(cmd, threads):
    env = dict(os.environ, CONVNET_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               NUMBA_NUM_THREADS=str(threads),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    line = proc.stdout[proc.stdout.index("RESULT ") + 7:]
    return json.JSONDecoder().raw_decode(line)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--quick", action="store_true", help="2 steps, 1 round")
    ap.add_argument("--worker", choices=["single", "ddp"], help=argparse.SUPPRESS)
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.rounds = 2, 1
    args.sizes = [1024, 65536, 1 << 20, 4 << 20]
    if args.worker == "single":
        return worker_single(args)
    if args.worker == "ddp":
        return worker_ddp(args)
    mpiexec = shutil.which("mpiexec") or shutil.which(
        "mpiexec", path=os.path.dirname(sys.executable))
    if mpiexec is None:
        raise SystemExit("mpiexec not found: pip install convnet[distributed]")
    me = [sys.executable, os.path.abspath(__file__), "--steps", str(args.steps),
          "--rounds", str(args.rounds)]
    single = _run(me + ["--worker", "single"], threads=2)
    single1 = _run(me + ["--worker", "single"], threads=1)
    ddp = _run([mpiexec, "-n", "2"] + me + ["--worker", "ddp"], threads=1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"single": single, "single_1thread": single1, "ddp": ddp}, f, indent=1)
    print(f"\nmachine: {os.cpu_count()} cores; per-step medians over {args.steps} steps x "
          f"{args.rounds} rounds\n")
    print("step ms: 1 rank x 2 threads (and x 1 thread); 2 ranks x 1 thread with DDP "
          "(overlapped), without communication (no_sync), all-reduce after backward;\n"
          "hidden (steps) = 1 - (overlapped - no comm) / (after bw - no comm); all-reduce ms "
          "after backward and still exposed at the end of DDP's backward, timed directly\n")
    print(f"{'model':9} {'1r x 2t':>8} {'1r x 1t':>8} {'2r x 1t':>8} {'speed-up':>8} "
          f"{'no comm':>8} {'after bw':>8} {'hidden':>7} {'grad MB':>7} {'ar after':>8} "
          f"{'exposed':>8} {'hidden':>7}")
    for name, m in ddp["models"].items():
        comm_after = m["after_backward"] - m["no_comm"]
        comm_over = m["overlapped"] - m["no_comm"]
        hidden = 1 - comm_over / comm_after if comm_after > 0 else float("nan")
        direct = 1 - m["comm_exposed"] / m["comm_after"] if m["comm_after"] > 0 else 0.0
        print(f"{name:9} {single[name] * 1e3:8.1f} {single1[name] * 1e3:8.1f} "
              f"{m['overlapped'] * 1e3:8.1f} "
              f"{single[name] / m['overlapped']:8.2f} {m['no_comm'] * 1e3:8.1f} "
              f"{m['after_backward'] * 1e3:8.1f} {hidden:7.0%} {m['grad_mb']:7.2f} "
              f"{m['comm_after'] * 1e3:8.2f} {m['comm_exposed'] * 1e3:8.2f} {direct:7.0%}")
    print(f"\n{'floats':>9} {'ours us':>9} {'raw us':>9} {'ours GB/s':>9} {'raw GB/s':>9} "
          f"{'overhead':>8}")
    for r in ddp["allreduce"]:
        gb = r["floats"] * 4 / 1e9
        print(f"{r['floats']:9d} {r['ours'] * 1e6:9.1f} {r['raw'] * 1e6:9.1f} "
              f"{gb / r['ours']:9.2f} {gb / r['raw']:9.2f} {r['ours'] / r['raw'] - 1:8.1%}")


if __name__ == "__main__":
    main()
