"""The fused-epilogue kernels (``conv2d_forward_act``, ``linear_forward_act``) for backends
that run the epilogue as a separate pass: the product with their own kernels, then their
activation kernel in place. The native backend applies it in registers instead
(csrc/cpu/epilogue.h); the CUDA one in its extension (csrc/cuda/epilogue.cu)."""

from __future__ import annotations

from . import spec


def activation_call(act, p1, p2):
    """(name of the activation kernel, its scalars) for an epilogue code; None for "none"."""
    kind = spec.EPILOGUE_ACTS[int(act)]
    if kind == "none":
        return None
    params = spec.ACTIVATION_KERNELS[kind][0]
    values = tuple(int(v) if a.role == spec.INT else float(v)
                   for a, v in zip(params, (p1, p2)))
    return f"{kind}_forward", values


def composed(module):
    """conv2d_forward_act and linear_forward_act built from `module`'s conv2d_forward, gemm
    and activation kernels (the manifest's argument names, as check_backend wants)."""

    def _activate(y, act, p1, p2):
        call = activation_call(act, p1, p2)
        if call is not None:
            getattr(module, call[0])(y, y, *call[1])

    def conv2d_forward_act(x, w, b, y, sh, sw, ph, pw, dh, dw, act, p1, p2):
        module.conv2d_forward(x, w, b, y, sh, sw, ph, pw, dh, dw)
        _activate(y, act, p1, p2)

    def linear_forward_act(x, w, b, y, act, p1, p2):
        module.gemm(x, w, y, 1.0, 0.0, False, True)
        if b is not None:
            y += b
        _activate(y, act, p1, p2)

    return conv2d_forward_act, linear_forward_act
