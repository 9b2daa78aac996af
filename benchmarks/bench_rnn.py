"""LSTM and GRU forward+backward: convnet against torch.nn.LSTM/GRU on the CPU, side by side.

    python benchmarks/bench_rnn.py [--repeats 7] [--threads N] [--quick]

For each shape (sequence 50 and 100, batch 64, hidden 128 and 256, input 64) both libraries
run the same layer (weights copied through the state dict) on the same input with the same
thread count: forward, a loss on the outputs and the final state, backward to the input and
every parameter. The two alternate run by run so that a noisy neighbour hits both alike.
Prints the median time of each and the ratio torch / convnet (above 1: convnet is faster).

--clock cpu measures the process's CPU time instead of the wall clock: on a machine shared
with other jobs it counts only the time the benchmark actually ran, which makes the
one-thread comparison stable (with several threads it also counts spin-waiting, so quote
the wall clock there).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

SHAPES = [(50, 64, 64, 128), (50, 64, 64, 256), (100, 64, 64, 128), (100, 64, 64, 256)]


def make_pair(kind, seq, batch, inp, hidden, seed=0):
    import torch

    import convnet as cn

    torch.manual_seed(seed)
    tm = getattr(torch.nn, kind)(inp, hidden)
    cm = getattr(cn.nn, kind)(inp, hidden)
    cm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(seed).standard_normal((seq, batch, inp)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    xc = cn.tensor(x, requires_grad=True)

    def run_torch():
        out, _ = tm(xt)
        out.sum().backward()

    def run_convnet():
        out, _ = cm(xc)
        out.sum().backward()

    return run_torch, run_convnet


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn, clock):
    t0 = clock()
    fn()
    return clock() - t0


def bench(kind, shape, repeats, clock=time.perf_counter):
    run_torch, run_convnet = make_pair(kind, *shape)
    for f in (run_torch, run_convnet):  # warm-up: JIT, allocator, thread pools
        f()
    t_torch, t_conv = [], []
    for _ in range(repeats):
        t_torch.append(timed(run_torch, clock))
        t_conv.append(timed(run_convnet, clock))
    return statistics.median(t_torch), statistics.median(t_conv)


def main(argv=None):
    import torch

    import convnet as cn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="only the first shape")
    parser.add_argument("--kinds", default="LSTM,GRU")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args(argv)
    if args.threads:
        cn.set_num_threads(args.threads)
    torch.set_num_threads(cn.get_num_threads())
    shapes = SHAPES[:1] if args.quick else SHAPES
    print(f"{cn.get_num_threads()} threads (both libraries), median of {args.repeats}, "
          f"float32, forward + backward, {args.clock} clock")
    print(f"{'layer':<6}{'seq':>5}{'batch':>7}{'input':>7}{'hidden':>8}"
          f"{'torch ms':>11}{'convnet ms':>12}{'torch/convnet':>15}")
    for kind in args.kinds.split(","):
        for shape in shapes:
            tt, tc = bench(kind, shape, args.repeats, CLOCKS[args.clock])
            seq, batch, inp, hidden = shape
            print(f"{kind:<6}{seq:>5}{batch:>7}{inp:>7}{hidden:>8}{tt * 1e3:>11.2f}"
                  f"{tc * 1e3:>12.2f}{tt / tc:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
