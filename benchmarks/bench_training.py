"""Training-step speed: convnet against PyTorch CPU, side by side in one process.

    python benchmarks/bench_training.py [--steps 30] [--threads N] [--busy]

A step is forward, cross-entropy, backward and an Adam update on a batch of 128: a small
MLP (784-256-128-10, ReLU) and LeNet-5 as in the course (tanh, average pooling, C5 as a
5x5 convolution). Also the framework's own overhead per op on tiny tensors, where the
kernels cost nothing and only bookkeeping is left. Prints medians and ratios
(torch time / convnet time: above 1 means convnet is faster).

``--busy`` measures the LeNet-5 step under load instead: the two libraries' steps
alternate, first on the idle machine, then with one busy process (an endless shell loop)
pinned to the last core, and the table gives each library's slowdown (busy / idle).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

import numpy as np


def lenet(nn):
    """LeNet-5 from either ``convnet.nn`` or ``torch.nn`` (the same names)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


def mlp(nn):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                         nn.ReLU(), nn.Linear(128, 10))


def median_time(fn, steps):
    fn()
    fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    time.sleep(0.05)  # let one library's spinning threads settle before the other runs
    return float(np.median(times))


def alternating_medians(fns, steps):
    """Median time of each function, the calls alternating so that a change in the
    machine's load hits every one alike."""
    for fn in fns:
        fn()
        fn()
    times = [[] for _ in fns]
    for _ in range(steps):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
            time.sleep(0.01)  # let one library's spinning threads settle
    return [float(np.median(t)) for t in times]


def under_load(steps_ours, steps_torch, steps):
    """(idle, busy) medians of both steps; busy: an endless loop pinned to the last core."""
    idle = alternating_medians([steps_ours, steps_torch], steps)
    core = max(os.sched_getaffinity(0))
    busy = subprocess.Popen(["taskset", "-c", str(core), "sh", "-c", "while :; do :; done"])
    try:
        time.sleep(0.2)
        loaded = alternating_medians([steps_ours, steps_torch], steps)
    finally:
        busy.kill()
        busy.wait()
    return idle, loaded, core


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--busy", action="store_true",
                        help="LeNet-5 step with and without a busy process on one core")
    args = parser.parse_args(argv)

    import torch

    import convnet as cn

    if args.threads:
        cn.set_num_threads(args.threads)
    torch.set_num_threads(cn.get_num_threads())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    rows = []

    def step_convnet(model):
        opt = cn.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = cn.tensor(x), cn.tensor(y)

        def step():
            opt.zero_grad()
            loss = cn.functional.cross_entropy(model(xt), yt)
            loss.backward()
            opt.step()

        return step

    def step_torch(model):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt), yt)
            loss.backward()
            opt.step()

        return step

    if args.busy:
        idle, loaded, core = under_load(step_convnet(lenet(cn.nn)), step_torch(lenet(torch.nn)),
                                        args.steps)
        print(f"LeNet-5 step (batch 128, Adam), {cn.get_num_threads()} threads; busy loop on "
              f"core {core}; medians of {args.steps}")
        print(f"{'':<10}{'idle ms':>10}{'busy ms':>10}{'slowdown':>10}")
        for name, a, b in (("convnet", idle[0], loaded[0]), ("torch", idle[1], loaded[1])):
            print(f"{name:<10}{a * 1e3:>10.2f}{b * 1e3:>10.2f}{b / a:>10.2f}")
        return

    for name, ours, theirs in [
        ("MLP 784-256-128-10 step", mlp(cn.nn), mlp(torch.nn)),
        ("LeNet-5 step", lenet(cn.nn), lenet(torch.nn)),
    ]:
        rounds = [(median_time(step_convnet(ours), args.steps),
                   median_time(step_torch(theirs), args.steps)) for _ in range(3)]
        t_ours = float(np.median([r[0] for r in rounds]))
        t_torch = float(np.median([r[1] for r in rounds]))
        rows.append((name + " (batch 128, Adam)", t_ours, t_torch))

    a = cn.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    at = torch.tensor(a.numpy(), requires_grad=True)

    def tiny_ours():
        ((a * a + a) @ a).sum().backward()

    def tiny_torch():
        ((at * at + at) @ at).sum().backward()

    rows.append(("4 tiny ops fwd+bwd (overhead)", median_time(tiny_ours, 200),
                 median_time(tiny_torch, 200)))

    print(f"{'case':<44}{'convnet ms':>12}{'torch ms':>12}{'ratio':>8}")
    for name, t1, t2 in rows:
        print(f"{name:<44}{t1 * 1e3:>12.3f}{t2 * 1e3:>12.3f}{t2 / t1:>8.2f}")
    print("ratio = torch time / convnet time (above 1: convnet faster); medians; "
          f"{cn.get_num_threads()} threads")


if __name__ == "__main__":
    main()
