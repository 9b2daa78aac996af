"""``GradScaler``: dynamic loss scaling for float16 training, as ``torch.amp.GradScaler``.

The loss is multiplied by the scale before backward so that small float16 gradients do
not flush to zero; ``unscale_`` divides the gradients back (once per optimizer and step)
and records whether any is inf/NaN; ``step`` skips the optimizer's step when one was;
``update`` halves the scale after such a step and doubles it after ``growth_interval``
clean steps in a row. The scale and the growth tracker are kept as PyTorch keeps them
(a float32 scale, an int32 count), so a run gives the same scale history.
"""

from __future__ import annotations

import enum
import warnings
from collections import defaultdict

import numpy as np


class OptState(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _refresh_per_optimizer_state() -> dict:
    return {"stage": OptState.READY, "found_inf_per_device": {}}


def _cuda_available() -> bool:
    from .. import cuda

    return cuda.is_available()


class GradScaler:
    """Loss scaling: ``scaler.scale(loss).backward(); scaler.step(opt); scaler.update()``."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0**16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        device = str(getattr(device, "type", device)).partition(":")[0]
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
        self._device = device
        self._enabled = bool(enabled)
        if self._enabled and device == "cuda" and not _cuda_available():
            warnings.warn("GradScaler is enabled, but CUDA is not available. Disabling.",
                          stacklevel=2)
            self._enabled = False
        if self._enabled:
            if not growth_factor > 1.0:
                raise ValueError(f"growth_factor: must be > 1.0, got {growth_factor!r}")
            if not backoff_factor < 1.0:
                raise ValueError(f"backoff_factor: must be < 1.0, got {backoff_factor!r}")
            if int(growth_interval) != growth_interval or growth_interval < 1:
                raise ValueError(f"growth_interval: expected a positive integer, got "
                                 f"{growth_interval!r}")
            self._init_scale = float(init_scale)
            self._scale = None  # a float32 0-d tensor, made on the first scale()
            self._growth_factor = float(growth_factor)
            self._backoff_factor = float(backoff_factor)
            self._growth_interval = int(growth_interval)
            self._init_growth_tracker = 0
            self._growth_tracker = None
            self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    # ------------------------------------------------------------------ scaling
    def _lazy_init_scale_growth_tracker(self, device) -> None:
        from ..creation import full

        self._scale = full((), self._init_scale, dtype=np.float32, device=device)
        self._growth_tracker = full((), self._init_growth_tracker, dtype=np.int32,
                                    device=device)

    def scale(self, outputs):
        """``outputs`` (a tensor, or a list/tuple/iterable of them) times the scale."""
        if not self._enabled:
            return outputs
        if hasattr(outputs, "_vc"):
            if self._scale is None:
                self._lazy_init_scale_growth_tracker(outputs.device)
            return outputs * self._scale.to(outputs.device)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        try:
            return map(self.scale, iter(outputs))
        except TypeError as exc:
            raise ValueError("outputs must be a Tensor or an iterable of Tensors") from exc

    def _check_scale_growth_tracker(self, funcname: str):
        fix = ("This may indicate your script did not use scaler.scale(loss or outputs) "
               "earlier in the iteration.")
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  {fix}")
        if self._growth_tracker is None:
            raise AssertionError(f"Attempted {funcname} but _growth_tracker is None.  {fix}")
        return self._scale, self._growth_tracker

    def _unscale_grads_(self, optimizer, inv_scale: float, allow_fp16: bool) -> dict:
        """Multiply every gradient by ``inv_scale`` in place; per device, 1.0 when one of
        them holds an inf or a NaN."""
        from ..creation import full

        found: dict = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad._data
                if not allow_fp16 and g.dtype == np.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                xp = p.grad._xp
                bad = not bool(xp.isfinite(g).all())
                # unscaled in float32 then rounded once, as PyTorch's kernel does
                p.grad._data[...] = (g.astype(np.float32) * np.float32(inv_scale)).astype(
                    g.dtype)
                p.grad._vc[0] += 1
                dev = p.grad.device.type
                found[dev] = found.get(dev, False) or bad
        return {d: full((), float(v), dtype=np.float32, device=d) for d, v in found.items()}

    def unscale_(self, optimizer) -> None:
        """Divide ``optimizer``'s gradients by the scale (before clipping them, say)."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since "
                               "the last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # the reciprocal in float64, rounded to float32: PyTorch's inv_scale
        inv_scale = float(np.float32(1.0 / np.float64(self._scale.item())))
        state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale, False)
        state["stage"] = OptState.UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step()`` unless an inf/NaN gradient was found (then None)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is "
                               "enabled.")
        self._check_scale_growth_tracker("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if not state["found_inf_per_device"]:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = None
        if not sum(v.item() for v in state["found_inf_per_device"].values()):
            retval = optimizer.step(*args, **kwargs)
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None) -> None:
        """Back off after a step with inf/NaN gradients, grow after ``growth_interval``
        clean ones; or set ``new_scale`` (a float or a one-element tensor)."""
        if not self._enabled:
            return
        scale, tracker = self._check_scale_growth_tracker("update")
        if new_scale is not None:
            if hasattr(new_scale, "_vc"):
                if new_scale.numel() != 1 or new_scale.requires_grad:
                    raise ValueError("new_scale should be a float or a 1-element tensor "
                                     "with requires_grad=False.")
                new_scale = new_scale.item()
            elif not isinstance(new_scale, float):
                raise TypeError(f"new_scale: expected a float or a 1-element tensor, got "
                                f"{new_scale!r}")
            scale._data[...] = new_scale
        else:
            found = [f.item() for st in self._per_optimizer_states.values()
                     for f in st["found_inf_per_device"].values()]
            if not found:
                raise AssertionError("No inf checks were recorded prior to update.")
            self._update_scale(sum(found) > 0)
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def _update_scale(self, found_inf: bool) -> None:
        """PyTorch's ``_amp_update_scale_``, in float32 as its kernel computes it."""
        s = np.float32(self._scale.item())
        if found_inf:
            self._scale._data[...] = s * np.float32(self._backoff_factor)
            self._growth_tracker._data[...] = 0
            return
        successful = int(self._growth_tracker.item()) + 1
        if successful == self._growth_interval:
            grown = s * np.float32(self._growth_factor)
            if np.isfinite(grown):
                self._scale._data[...] = grown
            successful = 0
        self._growth_tracker._data[...] = successful

    # ------------------------------------------------------------------ accessors
    def get_scale(self) -> float:
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        if self._growth_tracker is None:
            return self._init_growth_tracker
        return int(self._growth_tracker.item())

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """The scale, the factors, the interval and the growth count ({} when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was "
                               "saved from a disabled instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            self._scale._data[...] = self._init_scale
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._growth_tracker is not None:
            self._growth_tracker._data[...] = self._init_growth_tracker
