"""Cost of the checkpoint checksums: ``convnet.load`` of a 100 MB checkpoint with and
without CRC32C verification, interleaved, medians of several repetitions.

    python benchmarks/bench_checkpoint.py [--mb 100] [--repeat 15]

The file is in the page cache after the first read, so this is the least favourable case
for the checksums (no disk time to hide them); the target is an overhead under 10%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def main(argv=None) -> dict:
    import convnet as cn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n_tensors = 50  # a state dict of 50 float32 tensors
    per = args.mb * 2**20 // 4 // n_tensors
    state = {"model": {f"layer{i}.weight": rng.standard_normal(per, dtype=np.float32)
                       for i in range(n_tensors)}, "epoch": 3}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "big.safetensors")
        t0 = time.perf_counter()
        cn.save(state, path)
        save_s = time.perf_counter() - t0
        size = os.path.getsize(path)
        cn.load(path)  # warm the page cache
        times = {True: [], False: []}
        for _ in range(args.repeat):
            for verify in (False, True):
                t0 = time.perf_counter()
                cn.load(path, verify=verify)
                times[verify].append(time.perf_counter() - t0)
    plain, checked = statistics.median(times[False]), statistics.median(times[True])
    result = {"size_mb": size / 2**20, "save_s": save_s, "load_s": plain,
              "load_verified_s": checked, "overhead": checked / plain - 1}
    print(f"checkpoint {result['size_mb']:.1f} MB, {n_tensors} tensors; save {save_s:.3f} s")
    print(f"load, verify=False: median {plain * 1e3:.1f} ms over {args.repeat}")
    print(f"load, verify=True:  median {checked * 1e3:.1f} ms over {args.repeat}")
    print(f"checksum overhead: {result['overhead'] * 100:.1f}% of the load time")
    return result


if __name__ == "__main__":
    main()
