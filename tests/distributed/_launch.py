"""Start real MPI ranks for the distributed tests: ``mpiexec -n N python script``.

The tests skip (saying why) where mpi4py or mpiexec is missing; CI installs both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def mpiexec() -> str:
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install "
                        "convnet[distributed])")
    found = shutil.which("mpiexec") or shutil.which("mpiexec",
                                                    path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("mpiexec is not on PATH (pip install mpich, or a system MPI)")
    return found


def run_ranks(script: str, *args, n: int = 2, timeout: float = 240, mpi_flags=(),
              check: bool = True) -> subprocess.CompletedProcess:
    """Run tests/distributed/scripts/<script> on ``n`` ranks with one thread each."""
    env = dict(os.environ, CONVNET_NUM_THREADS="1", OMP_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    cmd = [mpiexec(), *mpi_flags, "-n", str(n), sys.executable, str(SCRIPTS / script),
           *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(ROOT))
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def results(proc) -> list[dict]:
    """The JSON objects the ranks printed after 'RESULT ' (one per rank; mpiexec may
    interleave the ranks' lines, so they are decoded where they start)."""
    decoder, out, text = json.JSONDecoder(), [], proc.stdout
    start = text.find("RESULT ")
    while start >= 0:
        obj, end = decoder.raw_decode(text, start + len("RESULT "))
        out.append(obj)
        start = text.find("RESULT ", end)
    return sorted(out, key=lambda r: r.get("rank", 0))
