"""Builds csrc/cuda with g++ against tests/kernels/cuda_emu (the CPU stand-in for CUDA).

The sources are first mirrored with two rewrites the emulator needs (the real sources
stay as nvcc reads them): each `__shared__ T name[...];` becomes a reference into the
running block's NaN-filled arena (per block, so that blocks can run concurrently, and
capped at 48 KiB), and each `__launch_bounds__(...)` becomes a check at the kernel's
entry. A declaration either rewrite misses stops the build (the emulator header turns
the bare keywords into static_asserts).
"""

import glob
import os
import re
import shutil
import subprocess
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMU = os.path.join(ROOT, "tests", "kernels", "cuda_emu")
CSRC = os.path.join(ROOT, "csrc")

_SHARED = re.compile(r"__shared__\s+(?:__align__\((\w+)\)\s+)?([^;{}()]+?)\s*\b(\w+)\s*"
                     r"((?:\[[^\]]+\])+)\s*;")
_BOUNDS = re.compile(r"__launch_bounds__\(")


def compiler():
    """The C++ compiler (CXX or g++), or None."""
    return shutil.which(os.environ.get("CXX", "g++"))


def skip_reason():
    """Why the emulated build cannot run here, or None."""
    if compiler() is None:
        return "no C++ compiler (g++ or $CXX) for the emulated CUDA build"
    try:
        import pybind11  # noqa: F401
    except ImportError:
        return "pybind11 is not installed (the emulated build compiles the binding)"
    return None


def _matching(text, i, open_="(", close=")"):
    """Index just past the bracket that closes the one at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        depth += text[j] == open_
        depth -= text[j] == close
        if depth == 0:
            return j + 1
    raise ValueError("unbalanced brackets")


def _rewrite_bounds(text):
    while (m := _BOUNDS.search(text)) is not None:
        end_args = _matching(text, m.end() - 1)
        args = text[m.end():end_args - 1]
        name = re.compile(r"\s*\w+\s*\(").match(text, end_args)
        if name is None:
            raise ValueError(f"__launch_bounds__({args}) not followed by a kernel name")
        body = text.index("{", _matching(text, name.end() - 1))
        text = (text[:m.start()] + text[end_args:body + 1] +
                f" ::convnet_emu::launch_bounds({args});" + text[body + 1:])
    return text


def rewrite(text):
    """The emulator's version of one CUDA source (see the module docstring)."""
    def shared(m):
        align, ctype, name, dims = m.groups()
        align_arg = f", {align}" if align else ""
        return (f"static char {name}_emu_key_; auto& {name} = "
                f"::convnet_emu::shared<{ctype}{dims}{align_arg}>(&{name}_emu_key_);")

    return _rewrite_bounds(_SHARED.sub(shared, text))


def _mirror(out_dir):
    """csrc rewritten under out_dir/csrc; files are only rewritten when they change, so
    the objects' timestamps keep meaning something."""
    dst_root = os.path.join(out_dir, "csrc")
    for src in glob.glob(os.path.join(CSRC, "**", "*"), recursive=True):
        if os.path.isdir(src):
            continue
        dst = os.path.join(dst_root, os.path.relpath(src, CSRC))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(src) as f:
            text = f.read()
        if src.endswith((".cu", ".cuh")):
            text = rewrite(text)
        if os.path.exists(dst):
            with open(dst) as f:
                if f.read() == text:
                    continue
        with open(dst, "w") as f:
            f.write(text)
    return dst_root


def build(out_dir, flags=(), link_flags=()):
    """Compile the emulated _cuda module into out_dir (objects that are current are kept);
    returns (path of the module, None) or (None, the compiler's complaint)."""
    import pybind11

    cxx = compiler()
    src_root = _mirror(out_dir)
    base = ["-std=c++20", "-O1", "-fPIC", "-DCONVNET_CUDA_EMULATE", f"-I{EMU}",
            f"-I{src_root}", f"-I{src_root}/include", f"-I{pybind11.get_include()}",
            f"-I{sysconfig.get_paths()['include']}", *flags]
    sources = sorted(glob.glob(os.path.join(src_root, "cuda", "*.cu")))
    sources += sorted(glob.glob(os.path.join(src_root, "bind_cuda*.cpp")))
    deps = [p for p in glob.glob(os.path.join(src_root, "**", "*"), recursive=True)
            if p.endswith((".cuh", ".h"))] + glob.glob(os.path.join(EMU, "*.h"))
    newest_dep = max(os.path.getmtime(d) for d in deps)
    obj_dir = os.path.join(out_dir, "obj")
    os.makedirs(obj_dir, exist_ok=True)
    todo, objects = [], []
    for src in sources:
        obj = os.path.join(obj_dir, os.path.basename(src) + ".o")
        objects.append(obj)
        if not (os.path.exists(obj) and
                os.path.getmtime(obj) >= max(os.path.getmtime(src), newest_dep)):
            todo.append((src, obj))
    jobs = max(1, int(os.environ.get("CONVNET_EMU_JOBS", os.cpu_count() or 1)))
    while todo:
        batch, todo = todo[:jobs], todo[jobs:]
        procs = []
        for src, obj in batch:
            lang = ["-x", "c++"] if src.endswith(".cu") else []
            procs.append((src, obj, subprocess.Popen(
                [cxx, *base, *lang, "-c", src, "-o", obj + ".tmp"], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)))
        for src, obj, p in procs:
            out = p.communicate()[0]
            if p.returncode != 0:
                return None, f"emulated build of {os.path.basename(src)} failed:\n{out[-4000:]}"
            os.replace(obj + ".tmp", obj)
    so = os.path.join(out_dir, "_cuda" + sysconfig.get_config_var("EXT_SUFFIX"))
    res = subprocess.run([cxx, "-shared", *objects, "-o", so, "-lpthread", *link_flags],
                         capture_output=True, text=True)
    if res.returncode != 0:
        return None, f"emulated link failed:\n{res.stderr[-4000:]}"
    return so, None


def build_program(source, out_dir, flags=()):
    """One stand-alone program against the emulator (its own source rewritten too);
    returns (path of the executable, None) or (None, the compiler's complaint)."""
    src_root = _mirror(out_dir)
    with open(source) as f:
        text = rewrite(f.read())
    src = os.path.join(out_dir, os.path.basename(source))
    with open(src, "w") as f:
        f.write(text)
    exe = os.path.splitext(src)[0]
    res = subprocess.run([compiler(), "-std=c++20", "-O1", "-DCONVNET_CUDA_EMULATE",
                          f"-I{EMU}", f"-I{src_root}", f"-I{src_root}/include", *flags,
                          "-x", "c++", src, "-o", exe, "-lpthread"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        return None, f"emulator self-test build failed:\n{res.stderr[-4000:]}"
    return exe, None


def build_dir(tag=""):
    base = os.environ.get("CONVNET_EMU_BUILD") or os.path.join(ROOT, "build", "cuda-emu")
    return base + tag
