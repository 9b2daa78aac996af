"""Build convnet._C (C++ CPU kernels, always attempted).

Environment switches:
  CONVNET_PORTABLE=1   build without -march=native (a binary that runs on any x86-64/ARM64)
  CONVNET_NO_OPENMP=1  build single-threaded even where OpenMP is available
The extension is optional: if it cannot be compiled, convnet still installs and
runs on its Numba kernels, and convnet.backends() says the native one is missing.
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
        cmd = [compiler_cmd, path, "-o", os.path.join(tmp, "probe"), *flags]
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False


class BuildExt(build_ext):
    def build_extensions(self):
        cxx = self.compiler.compiler_so[0] if hasattr(self.compiler, "compiler_so") else "c++"
        cxx = shutil.which(cxx) or cxx
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


cpu_sources = sorted(glob("csrc/cpu/*.cpp")) + ["csrc/bind_cpu.cpp"]
ext_modules = [
    Pybind11Extension(
        "convnet._C",
        cpu_sources,
        include_dirs=["csrc/include"],
        cxx_std=17,
        optional=True,
    )
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
