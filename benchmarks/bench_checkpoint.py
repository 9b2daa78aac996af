"""Cost of the checkpoint checksums: ``convnet.load`` of a 100 MB checkpoint with and
without CRC32C verification, interleaved, medians of several repetitions.

    python benchmarks/bench_checkpoint.py [--mb 100] [--repeat 15] [--cold]

By default the file is in the page cache after the first read, the least favourable case
for the checksums (no disk time to hide them); ``--cold`` evicts it before every load.
The target is an overhead under 10%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def _evict(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main(argv=None) -> dict:
    import convnet as cn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--cold", action="store_true",
                        help="evict the file from the page cache before each load "
                        "(posix_fadvise DONTNEED), so that it is read from the disk")
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
        cpu = {True: [], False: []}
        for _ in range(args.repeat):
            for verify in (False, True):
                if args.cold:
                    _evict(path)
                t0, c0 = time.perf_counter(), time.process_time()
                cn.load(path, verify=verify)
                times[verify].append(time.perf_counter() - t0)
                cpu[verify].append(time.process_time() - c0)
    plain, checked = statistics.median(times[False]), statistics.median(times[True])
    cpu_plain, cpu_checked = statistics.median(cpu[False]), statistics.median(cpu[True])
    result = {"size_mb": size / 2**20, "save_s": save_s, "load_s": plain,
              "load_verified_s": checked, "overhead": checked / plain - 1,
              "cpu_s": cpu_plain, "cpu_verified_s": cpu_checked,
              "cpu_overhead": cpu_checked / cpu_plain - 1}
    print(f"checkpoint {result['size_mb']:.1f} MB, {n_tensors} tensors; save {save_s:.3f} s; "
          f"{'read from disk (evicted before each load)' if args.cold else 'page cache warm'}")
    print(f"load, verify=False: median {plain * 1e3:.1f} ms over {args.repeat}")
    print(f"load, verify=True:  median {checked * 1e3:.1f} ms over {args.repeat}")
    print(f"checksum overhead: {result['overhead'] * 100:.1f}% of the load time (wall)")
    print(f"CPU time (all threads): {cpu_plain * 1e3:.1f} ms vs {cpu_checked * 1e3:.1f} ms, "
          f"{result['cpu_overhead'] * 100:.1f}% more")
    return result


if __name__ == "__main__":
    main()
