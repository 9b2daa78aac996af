"""Rank 1 fails (raises, or kills itself) while rank 0 waits in an all-reduce."""

import os
import signal
import sys
import time

import numpy as np

import convnet.distributed as dist

mode, timeout = sys.argv[1], float(sys.argv[2])
dist.init_process_group("mpi", timeout=timeout)
rank = dist.get_rank()
print(f"PID rank {rank} {os.getpid()}", flush=True)
dist.barrier()
if rank == 1:
    if mode == "raise":
        raise ValueError("boom in rank 1")
    if mode == "hang":
        time.sleep(120)
    os.kill(os.getpid(), signal.SIGKILL)
dist.all_reduce(np.ones(3))
print(f"rank {rank} finished", flush=True)
