"""The bfloat16 rows of ``convnet bench``: GEMM and a ResNet 3x3 convolution on bfloat16
inputs (float32 accumulation), each timed against PyTorch's bfloat16 and against convnet's
own float32 kernel on the same shape (the issue's two targets: >= 1.0x PyTorch bf16, >=
1.8x our float32 for the GEMM where the CPU has AVX512-BF16). The anchor of each row is in
its name."""

from __future__ import annotations

import numpy as np

from . import bfloat16
from . import kernels as K
from .bench import Case

GEMM_SIZES = (1024, 2048)
CONV = ("32x128x28x28 128@3x3", (32, 128, 28, 28), (128, 128, 3, 3), 1, 1)


def _gemm_cases(n, rng, torch) -> list[Case]:
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a16, b16 = a.astype(bfloat16), b.astype(bfloat16)
    c16, c32 = np.empty((n, n), bfloat16), np.empty((n, n), np.float32)

    def ours(be):
        return lambda: K.gemm(a16, b16, c16, backend=be)

    def our_fp32():
        return lambda: K.gemm(a, b, c32, backend="native")

    out = [Case("bf16 gemm", f"gemm {n} vs convnet fp32", 2.0 * n**3, ours, our_fp32,
                "convnet fp32")]
    if torch is not None:
        ta, tb = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
        tc = torch.empty((n, n), dtype=torch.bfloat16)
        out.append(Case("bf16 gemm", f"gemm {n} vs torch bf16", 2.0 * n**3, ours,
                        lambda: (lambda: torch.matmul(ta, tb, out=tc)), "torch bf16"))
    return out


def _conv_cases(rng, torch) -> list[Case]:
    name, x_shape, w_shape, stride, padding = CONV
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    y_shape = K.conv2d_output_shape(x_shape, w_shape, stride, padding)
    dy = rng.standard_normal(y_shape, dtype=np.float32)
    x16, w16, dy16 = x.astype(bfloat16), w.astype(bfloat16), dy.astype(bfloat16)
    flops = 2.0 * np.prod(y_shape) * np.prod(w_shape[1:])

    def fwd(be):
        return lambda: K.conv2d_forward(x16, w16, None, stride, padding, backend=be)

    def fwd_bwd(be):
        def run():
            K.conv2d_forward(x16, w16, None, stride, padding, backend=be)
            K.conv2d_backward_data(dy16, w16, x_shape, stride, padding, backend=be)
            K.conv2d_backward_weight(dy16, x16, w_shape, stride, padding, backend=be)

        return run

    def our_fp32():
        return lambda: K.conv2d_forward(x, w, None, stride, padding, backend="native")

    out = [Case("bf16 conv", f"{name} vs convnet fp32", flops, fwd, our_fp32,
                "convnet fp32")]
    if torch is not None:
        xt = torch.from_numpy(x).bfloat16().requires_grad_(True)
        wt = torch.from_numpy(w).bfloat16().requires_grad_(True)
        dyt = torch.from_numpy(dy).bfloat16()
        conv = torch.nn.functional.conv2d

        def torch_fwd():
            def run():
                with torch.no_grad():
                    conv(xt, wt, None, stride, padding)

            return run

        def torch_fwd_bwd():
            def run():
                xt.grad = wt.grad = None
                conv(xt, wt, None, stride, padding).backward(dyt)

            return run

        out += [Case("bf16 conv", f"{name} vs torch bf16", flops, fwd, torch_fwd,
                     "torch bf16"),
                Case("bf16 fwd+bwd", f"{name} vs torch bf16", 3 * flops, fwd_bwd,
                     torch_fwd_bwd, "torch bf16")]
    return out


def bf16_cases(rng, torch, quick: bool = False) -> list[Case]:
    cases = []
    for n in GEMM_SIZES[:1] if quick else GEMM_SIZES:
        cases += _gemm_cases(n, rng, torch)
    return cases + _conv_cases(rng, torch)
