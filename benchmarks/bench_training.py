"""Training-step speed: convnet against PyTorch CPU, side by side in one process.

    python benchmarks/bench_training.py [--steps 30] [--threads N]

A step is forward, cross-entropy, backward and an Adam update on a batch of 128: a small
MLP (784-256-128-10, ReLU) and LeNet-5 as in the course (tanh, average pooling, C5 as a
5x5 convolution). Also the framework's own overhead per op on tiny tensors, where the
kernels cost nothing and only bookkeeping is left. Prints medians and ratios
(torch time / convnet time: above 1 means convnet is faster).
"""

from __future__ import annotations

import argparse
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
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
