"""The pybind11 layers on their own: every kernel of the manifest called on ``convnet._C``
(and on the CUDA binding, built for the CPU emulator, through its adapter) without the
validation boundary, with undersized buffers and with sizes whose products overflow.

Each call must either be refused with a ValueError or run inside its buffers: every array
ends where a PROT_NONE page begins, so a kernel reading or writing past one dies, and the
calls run in a child process where a crash is a failure, not the end of the session. The
calls are generated from the manifest and the valid calls of ``convnet verify``."""

import ctypes
import json
import mmap
import os
import subprocess
import sys

import numpy as np
import pytest

import convnet as cn
from convnet.kernels import spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PAGE = mmap.PAGESIZE
_KEEP = []  # the mappings stay alive as long as the child runs


def _guarded(a):
    """A copy of `a` whose last byte is followed by an unreadable page."""
    if a.nbytes == 0:
        return np.empty(a.shape, a.dtype)
    pages = -(-a.nbytes // _PAGE)
    m = mmap.mmap(-1, (pages + 1) * _PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mprotect(ctypes.c_void_p(base + pages * _PAGE), _PAGE, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect")
    _KEEP.append(m)
    out = np.frombuffer(m, a.dtype, a.size, pages * _PAGE - a.nbytes).reshape(a.shape)
    out[...] = a
    return out


def _template(name):
    from convnet import verify

    for _, check in verify._checks():
        if check.kernel == name:
            args, _ = verify._arguments(check, np.random.default_rng(0), np.float64)
            return args
    raise LookupError(name)


def _variants(kernel, args):
    """(label, changed arguments) of the calls for one kernel: each array with one extent
    one shorter, and, for each pair of arrays, both made empty with huge other extents."""
    arrays = [i for i, v in enumerate(args) if isinstance(v, np.ndarray)]
    for i in arrays:
        for d in range(args[i].ndim):
            if args[i].shape[d] > 0:
                shape = list(args[i].shape)
                shape[d] -= 1
                yield f"short {kernel.args[i].name}[{d}]", {i: np.resize(args[i], shape)}

    def huge(v, zeros):  # the extents in `zeros` empty, the others as large as NumPy allows
        n_big = v.ndim - len(zeros)
        big = 2 ** (59 // max(n_big, 1))
        return np.empty([0 if d in zeros else big for d in range(v.ndim)], v.dtype)

    def zero_sets(v):
        return [{d} for d in range(v.ndim)] + ([{0, 1}] if v.ndim >= 3 else [])

    for i in arrays:
        for j in arrays:
            if j < i:
                continue
            for zi in zero_sets(args[i]):
                for zj in zero_sets(args[j]):
                    yield (f"huge {kernel.args[i].name}/{sorted(zi)} "
                           f"{kernel.args[j].name}/{sorted(zj)}",
                           {i: huge(args[i], zi), j: huge(args[j], zj)})


def child(backend, names, so=None):
    """Runs every variant of the kernels `names` on `backend` ("native" or "emulated"),
    printing one JSON line per call before and after it."""
    if backend == "native":
        from convnet import _C as target
    else:
        from tests.kernels.test_cuda_emulated import _load_extension, load_adapter

        target = load_adapter(_load_extension(so))
        real_table = target._device_table

        def table(kind, dev, *args):  # the adapter builds a convolution's table on the host:
            dims = args[:1] + (args[3:5] if kind == "conv" else args[4:6])  # C|K, R, S
            # huge geometries get one row, which the binding must refuse
            if max(dims) > 2**10:
                return np.zeros((1, 4), np.int32)
            return real_table(kind, dev, *args)

        target._device_table = table
    for name in names:
        kernel = spec.BY_NAME[name]
        template = _template(name)
        for label, change in _variants(kernel, template):
            args = [_guarded(change.get(i, v)) if isinstance(change.get(i, v), np.ndarray)
                    else change.get(i, v) for i, v in enumerate(template)]
            print(json.dumps({"kernel": name, "call": label}), flush=True)
            try:
                getattr(target, name)(*args)
                outcome = "ran"
            except Exception as e:  # noqa: BLE001  (the class is what the test checks)
                outcome = f"{type(e).__name__}: {e}"
            print(json.dumps({"kernel": name, "call": label, "outcome": outcome}), flush=True)
    _KEEP.clear()


def _run(backend, so=None):
    code = (f"from tests.kernels.test_bindings_raw import child\n"
            f"child({backend!r}, {list(spec.NAMES)!r}, {so!r})\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, *sys.path]))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=1200, cwd=ROOT)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    done = [r for r in rows if "outcome" in r]
    if res.returncode != 0:
        last = rows[-1] if rows else None
        pytest.fail(f"the child died (rc {res.returncode}) at {last}:\n{res.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def native_rows():
    if not cn.backends()["native"]["available"]:
        pytest.skip(cn.backends()["native"]["detail"])
    return _run("native")


@pytest.fixture(scope="module")
def emulated_rows():
    from tests.kernels import emu_build

    reason = emu_build.skip_reason()
    if reason:
        pytest.skip(reason)
    so, error = emu_build.build(emu_build.build_dir())
    if error:
        pytest.fail(error)
    return _run("emulated", so)


def _check(rows, name):
    mine = [r for r in rows if r["kernel"] == name]
    assert mine, f"{name}: no call ran"
    bad = [r for r in mine if r["outcome"] != "ran" and not r["outcome"].startswith("ValueError")]
    assert not bad, bad[:5]
    # an undersized buffer is what the binding refuses, by name, for each kernel
    assert any("the sizes need" in r["outcome"] for r in mine), name


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", spec.NAMES)
def test_native_binding_refuses_undersized_buffers(native_rows, name):
    _check(native_rows, name)


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", spec.NAMES)
def test_emulated_cuda_binding_refuses_undersized_buffers(emulated_rows, name):
    _check(emulated_rows, name)


OVERFLOWING = {"gemm", "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight"}


def test_native_size_products_that_overflow_are_refused(native_rows):
    # sizes taken from several arrays, each empty but with huge extents: gemm's M from a and
    # N from b, the convolutions' K from w and P, Q from an empty output or gradient (the
    # other kernels take their sizes from one array that holds them, or from an input that
    # must be non-empty, so no product of theirs can overflow here)
    hit = {r["kernel"] for r in native_rows if "overflows 64 bits" in r["outcome"]}
    assert hit >= OVERFLOWING


def test_emulated_recurrence_refuses_overflowing_lengths(emulated_rows):
    from tests.kernels import emu_build
    from tests.kernels.test_cuda_emulated import _load_extension

    ext = _load_extension(emu_build.build(emu_build.build_dir())[0])
    big = 2**31 - 1
    buf = np.zeros(16, np.float32)
    for mode in range(4):
        with pytest.raises(ValueError, match="overflows 64 bits"):
            ext.rnn_recurrence_forward("float32", mode, [buf.ctypes.data] * 7, [16] * 7, big,
                                       big, big, False, 0, 0)
        with pytest.raises(ValueError, match="overflows 64 bits"):
            ext.rnn_recurrence_backward("float32", mode, [buf.ctypes.data] * 10, [16] * 10,
                                        big, big, big, False, 0, 0)
    hit = {r["kernel"] for r in emulated_rows if "overflows 64 bits" in r["outcome"]}
    assert hit >= OVERFLOWING
