"""The CUDA kernels run on the CPU: csrc/cuda/*.cu and csrc/bind_cuda.cpp compiled with g++
against tests/kernels/cuda_emu (each thread block as real threads, barriers and warp
shuffles included), driven through convnet/kernels/_cuda.py with NumPy arrays standing in
for CuPy ones, and checked with the very comparisons of the gpu tests (test_cuda.py):
native CPU kernel, float64 reference, NaN-poisoned outputs.

This is what can be checked without a GPU: the tile mappings, index tables, edge tiles,
split-K, reductions and the binding. It says nothing about speed or the GPU memory model;
test_cuda.py on a GPU does.
"""

import importlib.machinery
import importlib.util
import os
import sys
import types

import numpy as np
import pytest

import convnet as cn
from tests.kernels import emu_build
from tests.kernels import test_conv2d as conv_cases
from tests.kernels import test_cuda as gpu
from tests.kernels import test_pool2d as pool_cases
from tests.nn import test_rnn as layer_cases

ROOT = emu_build.ROOT
# Everything here runs kernels on emulated threads: a deadlock must fail, not hang CI.
pytestmark = pytest.mark.timeout(900)


def _load_extension(path):
    loader = importlib.machinery.ExtensionFileLoader("_cuda", path)
    spec = importlib.util.spec_from_file_location("_cuda", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _numpy_cupy():
    """The few CuPy calls the adapter and the gpu tests make, on NumPy (copies included)."""
    cp = types.SimpleNamespace(**{n: getattr(np, n) for n in (
        "full", "matmul", "ones", "zeros", "empty", "float32", "int64")})
    cp.asarray = lambda a, dtype=None: np.array(a, dtype=dtype)
    cp.asnumpy = np.asarray
    cp.cuda = types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0))
    return cp


def load_adapter(ext):
    """The real adapter, loaded a second time under another name with `ext` in place of
    convnet._cuda (which need not exist: no nvcc is needed here); NumPy arrays pass for
    CuPy ones."""
    adapter_path = os.path.join(ROOT, "convnet", "kernels", "_cuda.py")
    spec = importlib.util.spec_from_file_location("convnet.kernels._cuda_emulated",
                                                  adapter_path)
    adapter = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("convnet._cuda")
    sys.modules["convnet._cuda"] = ext
    try:
        spec.loader.exec_module(adapter)
    finally:
        if saved is None:
            del sys.modules["convnet._cuda"]
        else:
            sys.modules["convnet._cuda"] = saved
    adapter._ext = ext
    adapter._is_cupy = lambda a: isinstance(a, np.ndarray)
    adapter._ptr = lambda a: 0 if a is None else int(a.ctypes.data)
    adapter._launch_args = lambda **arrays: (0, 0)
    adapter._cupy = _numpy_cupy
    return adapter


@pytest.fixture(scope="module")
def emu():
    reason = emu_build.skip_reason()
    if reason:
        pytest.skip(reason)
    if not cn.backends()["native"]["available"]:
        pytest.skip("the comparisons need the native CPU backend")
    so, error = emu_build.build(emu_build.build_dir())
    if error:
        pytest.fail(error)
    return load_adapter(_load_extension(so))


@pytest.fixture(scope="module")
def cp():
    return _numpy_cupy()


def test_emulated_module_describes_itself(emu):
    from tests.kernels.test_cuda_build import KERNELS

    assert "convnet CPU emulator" in emu.describe()
    assert [k for k in KERNELS if not callable(getattr(emu._ext, k, None))] == []


# With the emulator's 4 SMs: 64x64 tiles, 128x128 ones (300x257) and 64x128 ones (40x1100).
GEMM_SHAPES = [(1, 1, 1), (3, 5, 7), (17, 33, 65), (15, 31, 257), (130, 70, 300),
               (300, 257, 513), (6, 784, 25), (64, 3, 1000), (40, 1100, 70)]


@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("m,n,k", GEMM_SHAPES)
def test_gemm(emu, cp, m, n, k, trans_a, trans_b, dtype):
    gpu.test_gemm_matches_cpu_and_cublas(cp, emu, m, n, k, trans_a, trans_b, dtype)


def test_gemm_unaligned(emu, cp):
    gpu.test_gemm_on_an_offset_unaligned_view(cp, emu)


# The CPU tests' cases (the gpu tests' larger ones take minutes on emulated threads);
# float64 for the small ones.
WIDE = ((4, 3, 24, 24), (16, 3, 3), 1, 1, 1)  # 64x128 tiles forward and backward data
CONV = [(c, np.float32) for c in conv_cases.CASES + [WIDE]] + \
    [(c, np.float64) for c in conv_cases.CASES if np.prod(c[0]) * c[1][0] <= 20000]
CONV_IDS = [f"x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-d{c[4]}-{np.dtype(d).name}".replace(" ", "")
            for c, d in CONV]


@pytest.mark.parametrize("case,dtype", CONV, ids=CONV_IDS)
def test_conv2d(emu, cp, case, dtype):
    gpu.test_conv2d_matches_cpu_and_cudnn(cp, emu, None, case, dtype)


@pytest.mark.parametrize("seed", range(4))
def test_conv2d_weight_gradient_split_k(emu, cp, monkeypatch, seed):
    """Few filters, long reduction: the split-K path with atomics and a zeroed output
    (one 64x64 tile, 576 reduction steps: 8 splits on the emulator's 4 SMs). Each seed
    runs the 8 blocks in another order (one at a time for odd seeds), so a split that is
    only right when some block runs first fails."""
    monkeypatch.setenv("CONVNET_EMU_SEED", str(seed))
    monkeypatch.setenv("CONVNET_EMU_BLOCKS_IN_FLIGHT", "1" if seed % 2 else "4")
    case = ((64, 2, 12, 12), (3, 3, 3), 1, 1, 1)
    gpu.test_conv2d_matches_cpu_and_cudnn(cp, emu, None, case, np.float32)


@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("case", pool_cases.CASES, ids=pool_cases.IDS)
def test_max_pool2d(emu, cp, case, dtype):
    gpu.test_max_pool2d_matches_cpu_and_cudnn(cp, emu, None, case, dtype)


def test_max_pool2d_ties_and_nan(emu, cp):
    gpu.test_max_pool2d_ties_and_nan_follow_the_cpu_rules(cp, emu)


@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", pool_cases.CASES, ids=pool_cases.IDS)
def test_avg_pool2d(emu, cp, case, count_include_pad, dtype):
    gpu.test_avg_pool2d_matches_cpu_and_cudnn(cp, emu, None, case, count_include_pad, dtype)


# Plus long channels over few of them: several blocks per channel (the split reduction).
BN = [s for s in gpu.BN_CASES if np.prod(s) <= 1 << 16] + [(64, 2, 16, 16), (8192, 3)]


@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("shape", BN)
def test_batch_norm(emu, cp, shape, dtype):
    gpu.test_batch_norm_matches_cpu_and_cudnn(cp, emu, None, shape, dtype)


@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("shape", [(17,), (3, 5, 7), (2, 3, 16, 17)])
@pytest.mark.parametrize("kind,alpha", gpu.ACTS, ids=[a[0] for a in gpu.ACTS])
def test_activations(emu, kind, alpha, shape, dtype):
    rng = np.random.default_rng(41)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.flat[0] = 30.0
    act = cn.kernels.ACTIVATIONS[kind]  # the kernel and scalars this kind runs on
    params = act.params(alpha)
    y = np.full(shape, np.nan, dtype)
    getattr(emu, f"{act.kernel}_forward")(x, y, *params)
    y_cpu = cn.kernels.activation_forward(x, kind, alpha, backend=gpu.cpu_backend())
    gpu.assert_close(y, y_cpu, dtype, f"{kind} forward")
    saved = y_cpu if act.saved == "y" else x
    dy = rng.standard_normal(shape).astype(dtype)
    dx = np.full(shape, np.nan, dtype)
    getattr(emu, f"{act.kernel}_backward")(dy, saved, dx, *params)
    dx_cpu = cn.kernels.activation_backward(dy, saved, kind, alpha, backend=gpu.cpu_backend())
    gpu.assert_close(dx, dx_cpu, dtype, f"{kind} backward")




@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("act", range(len(cn.kernels.spec.EPILOGUE_ACTS)))
def test_fused_epilogues(emu, act, dtype):
    """conv2d_forward_act / linear_forward_act: the product, then the epilogue pass."""
    from convnet.kernels import reference

    rng = np.random.default_rng(43)
    p1, p2 = (1.0, 0.0) if cn.kernels.spec.EPILOGUE_ACTS[act] == "gelu" else (0.2, 1.1)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    w = rng.standard_normal((5, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype) if act % 2 else None
    y = np.full((2, 5, 9, 8), np.nan, dtype)
    emu.conv2d_forward_act(x, w, b, y, 1, 1, 1, 1, 1, 1, act, p1, p2)
    expected = np.empty(y.shape, np.float64)
    reference.conv2d_forward_act(x, w, b, expected, 1, 1, 1, 1, 1, 1, act, p1, p2)
    gpu.assert_close(y, expected, dtype, "conv2d_forward_act")
    x = rng.standard_normal((7, 13)).astype(dtype)
    w = rng.standard_normal((6, 13)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype) if act % 2 == 0 else None
    y = np.full((7, 6), np.nan, dtype)
    emu.linear_forward_act(x, w, b, y, act, p1, p2)
    expected = np.empty(y.shape, np.float64)
    reference.linear_forward_act(x, w, b, expected, act, p1, p2)
    gpu.assert_close(y, expected, dtype, "linear_forward_act")


# Recurrent cells and the recurrence (the per-step GEMM included) and upsampling: the gpu
# tests' cases, with the emulator's 4 SMs.
@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("b,h", gpu.RNN_CELL_SHAPES[:3])
@pytest.mark.parametrize("kind", gpu.RNN_CELLS)
def test_rnn_cells(emu, cp, kind, b, h, accumulate, dtype):
    gpu.test_rnn_cells_match_cpu(cp, emu, kind, b, h, accumulate, dtype)


def test_lstm_cell_in_place(emu, cp):
    gpu.test_lstm_cell_in_place_as_the_cpu(cp, emu)


@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("t_len,b,h", gpu.RECURRENCE_SHAPES)
@pytest.mark.parametrize("mode", gpu.RNN_CELLS)
def test_rnn_recurrence(emu, cp, mode, t_len, b, h, reverse, dtype):
    gpu.test_rnn_recurrence_matches_cpu(cp, emu, mode, t_len, b, h, reverse, dtype)


def test_rnn_recurrence_bad_buffers(emu, cp):
    gpu.test_rnn_recurrence_refuses_bad_buffers(cp, emu)


@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("mode,corners", gpu.UPSAMPLE_MODES,
                         ids=["nearest", "bilinear", "bilinear-corners"])
@pytest.mark.parametrize("case", gpu.UPSAMPLE_CASES, ids=gpu.UPSAMPLE_IDS)
def test_upsample(emu, cp, case, mode, corners, dtype):
    gpu.test_upsample_matches_cpu_and_torch(cp, emu, None, case, mode, corners, dtype)


# The layers end to end on the emulated kernels: nn.LSTM/GRU/RNN through the functional
# code (input-projection and weight-gradient GEMMs, the recurrence, BPTT, both directions)
# against torch.nn with copied weights, the emulated module standing in for a CPU backend.
LAYER_CONFIGS = layer_cases.CONFIGS


@pytest.mark.parametrize("dtype", gpu.DTYPES, ids=gpu.DTYPE_IDS)
@pytest.mark.parametrize("config", LAYER_CONFIGS, ids=lambda c: "T{}B{}I{}H{}L{}{}{}{}".format(
    *c[:5], "bi" if c[5] else "", "bf" if c[6] else "", "h0" if c[7] else ""))
@pytest.mark.parametrize("kind", layer_cases.KINDS)
def test_recurrent_layers_match_torch(emu, monkeypatch, kind, config, dtype):
    from convnet.kernels import _registry

    calls = []
    for name in ("rnn_recurrence_forward", "rnn_recurrence_backward", "gemm"):
        fn = getattr(emu, name)

        def spy(*args, _fn=fn, _name=name):
            calls.append(_name)
            return _fn(*args)

        monkeypatch.setattr(emu, name, spy)
    monkeypatch.setitem(_registry._modules, "numba", emu)
    layer_cases.test_layer_matches_torch(kind, config, "numba", dtype,
                                         np.random.default_rng(12))
    assert {"rnn_recurrence_forward", "rnn_recurrence_backward", "gemm"} <= set(calls)
