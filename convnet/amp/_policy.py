"""Which ops autocast changes, per device type, after PyTorch 2.13's lists.

"lower": the inputs are cast to the region's 16-bit dtype (matrix products: conv, linear,
matmul/bmm, the fused RNN layers). "float32": the inputs are cast to float32 (ops whose
range or accumulation needs it). Every other op follows its inputs. The two devices
differ as PyTorch's do: on the CPU only the losses are float32 ops (softmax, norms and
reductions keep a 16-bit input's dtype, and compute in float32 inside their kernels),
while CUDA casts softmax, log-softmax, the norms, sum, cumsum, exp, log and pow to float32.
"""

from __future__ import annotations

_LOWER = ("_nn.Conv2d", "_conv_transpose.ConvTranspose2d", "_nn.Linear", "_ops.MatMul",
          "_select.Einsum", "_rnn.RecurrentLayer", "_fused.Conv2dAct", "_fused.LinearAct")
_CUDA_FLOAT32 = ("_nn.Softmax", "_nn.LogSoftmax", "_norm.LayerNorm", "_norm.GroupNorm",
                 "_ops.Sum", "_ops.Exp", "_ops.Log", "_ops.Pow", "_ops.PowScalar",
                 "_select.Cumsum")
LOSSES = ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
          "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div")

_tables: dict = {}


def _resolve(names):
    import importlib

    out = {}
    for qual in names:
        mod, _, cls = qual.rpartition(".")
        out[getattr(importlib.import_module(f"convnet.functional.{mod}"), cls)] = None
    return out


def _build() -> dict:
    lower = dict.fromkeys(_resolve(_LOWER), "lower")
    cuda = dict(lower)
    cuda.update(dict.fromkeys(_resolve(_CUDA_FLOAT32), "float32"))
    return {"cpu": lower, "cuda": cuda}


def policy_of(cls, device: str):
    """'lower', 'float32' or None for the Function class ``cls`` on ``device``."""
    if not _tables:
        _tables.update(_build())
    return _tables[device].get(cls)


def composite_policy(name: str, device: str):
    if name == "binary_cross_entropy" and device == "cuda":
        # PyTorch refuses it too: in float16 its log saturates; the logits form is safe
        raise RuntimeError(
            "binary_cross_entropy and BCELoss are unsafe to autocast on CUDA; use "
            "binary_cross_entropy_with_logits or BCEWithLogitsLoss, which combine the "
            "sigmoid with the loss and are safe to autocast")
    return "float32" if name in LOSSES else None
