"""Build convnet._C (C++ CPU kernels, always attempted).

Environment switches:
  CONVNET_PORTABLE=1   build without -march=native (a binary that runs on any x86-64/ARM64)
  CONVNET_NO_OPENMP=1  build single-threaded even where OpenMP is available
The extension is optional: if it cannot be compiled, convnet still installs and
runs on its Numba kernels, and convnet.backends() says the native one is missing.

convnet._cuda (CUDA kernels on CuPy arrays) is built from csrc/cuda/*.cu and
csrc/bind_cuda.cpp whenever nvcc is found (CUDA_HOME, PATH, /usr/local/cuda):
  CONVNET_NO_CUDA=1             skip it
  CONVNET_CUDA_ARCH="80;90"     compute capabilities to compile for (default 80;90;
                                PTX of the last one is embedded for newer GPUs)
  CONVNET_REQUIRE_CUDA_BUILD=1  a CUDA compile failure fails the build (CI) instead of
                                leaving convnet without its CUDA backend
  CONVNET_CUDA_JOBS=n           parallel nvcc processes (default: the CPU count)
cudart is linked statically, so the module imports on machines without a driver.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from glob import glob

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup
from setuptools.command.build_ext import build_ext


def _flag_works(compiler_cmd, flags):
    """True when the C++ compiler accepts these flags on a tiny OpenMP program."""
    src = "#include <omp.h>\nint main(){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.cpp")
        with open(path, "w") as f:
            f.write(src)
        cmd = [*compiler_cmd, path, "-o", os.path.join(tmp, "probe"), *flags]
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False


class BuildExt(build_ext):
    def build_extensions(self):
        cxx = list(getattr(self.compiler, "compiler_so", None) or ["c++"])
        # A launcher such as ccache (CC="ccache g++") goes with its compiler into the probe.
        cxx = cxx[:2] if os.path.basename(cxx[0]) == "ccache" and len(cxx) > 1 else cxx[:1]
        compile_args = ["-O3", "-std=c++17", "-fvisibility=hidden", "-ffp-contract=fast"]
        link_args = []
        if os.environ.get("CONVNET_PORTABLE", "0") != "1":
            compile_args.append("-march=native")
        if os.environ.get("CONVNET_NO_OPENMP", "0") != "1" and _flag_works(cxx, ["-fopenmp"]):
            compile_args.append("-fopenmp")
            link_args.append("-fopenmp")
        else:
            print("convnet: building without OpenMP", file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + list(ext.extra_compile_args or [])
            ext.extra_link_args = link_args + list(ext.extra_link_args or [])
        super().build_extensions()


# csrc/bind_cpu.cpp holds the module; csrc/bind_cpu_<topic>.cpp files add bindings to it
# (each defines a bind_<topic>(module) that bind_cpu.cpp calls).
cpu_sources = sorted(glob("csrc/cpu/*.cpp")) + sorted(glob("csrc/bind_cpu*.cpp"))
ext_modules = [
    Pybind11Extension(
        "convnet._C",
        cpu_sources,
        include_dirs=["csrc/include"],
        cxx_std=17,
        optional=True,
    )
]


# --------------------------------------------------------------------------- CUDA

# Files whose arithmetic tolerates --use_fast_math: pure multiply-adds (the flag also
# flushes denormals to zero, as the CPU kernels do). Pooling, batch norm and the
# activations keep IEEE division, sqrt and exp.
CUDA_FAST_MATH = {"gemm.cu", "conv2d.cu"}


def _env_on(name):
    return os.environ.get(name, "0") not in ("", "0")


def find_cuda():
    """(nvcc, CUDA home) from CUDA_HOME/CUDA_PATH, PATH or /usr/local/cuda; None if absent.

    A home is a directory with bin/nvcc and include/cuda_runtime.h; an nvcc on PATH may be a
    wrapper script elsewhere, so its real home is looked for among the usual places."""
    homes = [os.environ[v] for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    on_path = shutil.which("nvcc")
    if on_path:
        homes.append(os.path.dirname(os.path.dirname(os.path.realpath(on_path))))
    homes += ["/usr/local/cuda", *sorted(glob("/usr/local/cuda-*"), reverse=True)]
    for home in homes:
        nvcc = os.path.join(home, "bin", "nvcc")
        if os.access(nvcc, os.X_OK) and os.path.isfile(
                os.path.join(home, "include", "cuda_runtime.h")):
            return nvcc, home
    return None


def cuda_lib_dir(home):
    for sub in ("lib64", "lib", os.path.join("targets", "x86_64-linux", "lib"),
                os.path.join("targets", "sbsa-linux", "lib")):
        d = os.path.join(home, sub)
        if os.path.isfile(os.path.join(d, "libcudart_static.a")):
            return d
    return os.path.join(home, "lib64")


def cuda_archs():
    raw = os.environ.get("CONVNET_CUDA_ARCH", "80;90")
    archs = [a.strip().replace(".", "") for a in raw.replace(",", ";").split(";") if a.strip()]
    if not archs or not all(a.rstrip("a").isdigit() for a in archs):
        raise ValueError(f"CONVNET_CUDA_ARCH: expected e.g. '80;90', got {raw!r}")
    return archs


def nvcc_flags(archs):
    flags = ["-O3", "-std=c++17", "-lineinfo", "-Xcompiler", "-fPIC", "-Xcompiler",
             "-fvisibility=hidden", "-Icsrc", "-Icsrc/include",
             f'-DCONVNET_CUDA_ARCHS="{",".join("sm_" + a for a in archs)}"']
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    last = archs[-1]
    flags += ["-gencode", f"arch=compute_{last},code=compute_{last}"]
    return flags


def _newer_than(obj, deps):
    if not os.path.exists(obj):
        return False
    t = os.path.getmtime(obj)
    return all(os.path.getmtime(d) <= t for d in deps)


def compile_cuda_objects(nvcc, build_temp):
    """Compile csrc/cuda/*.cu to objects with nvcc (in parallel); returns their paths."""
    from concurrent.futures import ThreadPoolExecutor

    archs = cuda_archs()
    base = nvcc_flags(archs)
    sources = sorted(glob("csrc/cuda/*.cu"))
    headers = (glob("csrc/cuda/*.cuh") + glob("csrc/include/convnet/*") +
               ["csrc/cpu/kernels.h"])
    out_dir = os.path.join(build_temp, "cuda-" + "-".join(archs))
    os.makedirs(out_dir, exist_ok=True)

    def one(src):
        obj = os.path.join(out_dir, os.path.basename(src) + ".o")
        if _newer_than(obj, [src, *headers, __file__]):
            return obj
        flags = base + (["--use_fast_math"] if os.path.basename(src) in CUDA_FAST_MATH else [])
        cmd = [nvcc, *flags, "-c", src, "-o", obj]
        print("convnet: " + " ".join(cmd), file=sys.stderr)
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"nvcc failed on {src}:\n{res.stdout}{res.stderr}")
        return obj

    jobs = int(os.environ.get("CONVNET_CUDA_JOBS", "0") or 0) or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(sources)))) as pool:
        return list(pool.map(one, sources))


class BuildExtCuda(BuildExt):
    """BuildExt plus the nvcc step of convnet._cuda; a CUDA failure drops only that module
    (or fails the build under CONVNET_REQUIRE_CUDA_BUILD=1)."""

    def build_extensions(self):
        for ext in list(self.extensions):
            if ext.name != "convnet._cuda":
                continue
            try:
                found = find_cuda()
                if found is None:
                    raise RuntimeError("nvcc not found (set CUDA_HOME)")
                nvcc, home = found
                ext.extra_objects = compile_cuda_objects(nvcc, self.build_temp)
                ext.include_dirs = [*ext.include_dirs, os.path.join(home, "include")]
                ext.extra_link_args = [*(ext.extra_link_args or []), "-L" + cuda_lib_dir(home),
                                       "-lcudart_static", "-ldl", "-lrt", "-lpthread"]
            except Exception as exc:
                if _env_on("CONVNET_REQUIRE_CUDA_BUILD"):
                    raise
                print(f"convnet: not building the CUDA backend: {exc}", file=sys.stderr)
                self.extensions.remove(ext)
        super().build_extensions()


if not _env_on("CONVNET_NO_CUDA") and (find_cuda() or _env_on("CONVNET_REQUIRE_CUDA_BUILD")):
    ext_modules.append(
        Pybind11Extension(
            "convnet._cuda",
            sorted(glob("csrc/bind_cuda*.cpp")),
            include_dirs=["csrc", "csrc/include"],
            cxx_std=17,
            optional=not _env_on("CONVNET_REQUIRE_CUDA_BUILD"),
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExtCuda})
