"""Training: a Keras-like ``fit`` loop with metrics, callbacks and checkpoints.

    history = fit(model, train_loader, val_loader, epochs=10,
                  optimizer=cn.optim.Adam(model.parameters(), lr=1e-3),
                  callbacks=[EarlyStopping(patience=3, restore_best_weights=True),
                             ModelCheckpoint("ck.safetensors")])

Loaders yield ``(x, y)`` tensor batches (see :mod:`convnet.data`). ``history`` maps
``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr`` and ``epoch_seconds`` to
one value per epoch. Checkpoints hold the model, optimizer, scheduler, history and epoch,
so ``fit(..., resume=path)`` continues where a run stopped.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable

import numpy as np

from . import functional as F
from .amp.precision import Precision
from .autograd import no_grad
from .serialization import load, save
from .tensor import Tensor

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds")


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of rows whose largest logit is the label."""
    pred = logits._data.argmax(axis=1)
    return float((pred == labels._data).mean())


def _rank_world() -> tuple[int, int]:
    """(rank, world size) under convnet.distributed, else (0, 1)."""
    from . import distributed as dist

    if not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _sum_over_ranks(*values: float) -> tuple[float, ...]:
    """The values summed over all ranks (themselves in a single process)."""
    if _rank_world()[1] == 1:
        return values
    from . import distributed as dist

    arr = np.array(values, np.float64)
    dist.all_reduce(arr)
    return tuple(arr.tolist())


def _unwrap(model):
    """The model inside DistributedDataParallel: checkpoints hold its keys, so that a
    distributed run and a single process resume each other's checkpoints."""
    from .nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def _on(device, x, y):
    return (x, y) if device in (None, "cpu") else (x.to(device), y.to(device))


def evaluate(model, loader, loss_fn: Callable = F.cross_entropy,
             device: str | None = None, precision: str = "fp32") -> tuple[float, float]:
    """Mean loss and accuracy over a loader, in eval mode and without a graph
    (``precision``: 'fp32', or 'bf16'/'fp16' under autocast)."""
    was_training = model.training
    model.eval()
    total_loss = total_correct = count = 0.0
    with no_grad(), Precision(precision, device).autocast():
        for x, y in loader:
            x, y = _on(device, x, y)
            out = model(x)
            n = len(y)
            total_loss += float(loss_fn(out, y).item()) * n
            total_correct += accuracy(out, y) * n
            count += n
    model.train(was_training)
    # under convnet.distributed each rank saw its shard (or all of it: the means agree)
    total_loss, total_correct, count = _sum_over_ranks(total_loss, total_correct, count)
    if count == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    return total_loss / count, total_correct / count


class Callback:
    """Hooks called by :func:`fit`; set ``trainer.stop = True`` to end training."""

    def on_train_begin(self, trainer: Trainer) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass


def _monitor_mode(monitor: str, mode: str) -> str:
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    return mode


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without improvement of ``monitor``; optionally put
    back the weights of the best epoch (Keras's restore_best_weights)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if patience < 0:
            raise ValueError(f"patience: must be >= 0, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = _monitor_mode(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch = -1
        self.best_state = None
        self.wait = 0

    def on_epoch_end(self, trainer, epoch, logs):
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"EarlyStopping: no {self.monitor!r} in the epoch's metrics "
                           f"{sorted(logs)} (pass validation data to monitor val_*)")
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.stop = True
            trainer.log(f"early stopping: {self.monitor} has not improved for "
                        f"{self.patience} epochs (best {self.best:.4f} at epoch "
                        f"{self.best_epoch + 1})")

    def on_train_end(self, trainer):
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)
            trainer.log(f"restored the weights of epoch {self.best_epoch + 1}")


class ModelCheckpoint(Callback):
    """Write a resumable checkpoint (atomically) after every epoch, or only when
    ``monitor`` improves with ``save_best_only``."""

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto"):
        self.path = os.fspath(path)
        self.monitor, self.save_best_only = monitor, save_best_only
        self.mode = _monitor_mode(monitor, mode)
        self.best: float | None = None

    def on_epoch_end(self, trainer, epoch, logs):
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None or not _improved(value, self.best, self.mode, 0.0):
                return
            self.best = value
        trainer.save_checkpoint(self.path, epoch + 1)


class LRSchedulerCallback(Callback):
    """Step a learning-rate schedule once per epoch (ReduceLROnPlateau gets ``monitor``)."""

    def __init__(self, scheduler, monitor: str = "val_loss"):
        self.scheduler, self.monitor = scheduler, monitor

    def on_epoch_end(self, trainer, epoch, logs):
        from .optim.lr_scheduler import ReduceLROnPlateau

        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(logs[self.monitor])
        else:
            self.scheduler.step()


class Trainer:
    """State of one :func:`fit` run: model, optimizer, history, and the stop flag."""

    def __init__(self, model, optimizer, loss_fn, callbacks, clip_grad_norm, clip_grad_value,
                 progress, log, device, run=None, precision="fp32"):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.precision = Precision(precision, device)
        self.run = run
        self.device = device
        self.callbacks = list(callbacks)
        self.clip_grad_norm, self.clip_grad_value = clip_grad_norm, clip_grad_value
        self.progress = progress
        self.log = log
        self.history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
        self.stop = False
        self.scheduler = next((c.scheduler for c in self.callbacks
                               if isinstance(c, LRSchedulerCallback)), None)

    def save_checkpoint(self, path, epochs_done: int) -> None:
        if _rank_world()[0] != 0:
            return  # the ranks hold the same state: rank 0 writes it
        state = {"model": _unwrap(self.model).state_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                 "history": self.history, "epoch": epochs_done}
        if self.run is not None:
            state["run"] = self.run
        if self.precision.scaler is not None:  # float16: the loss scale resumes too
            state["scaler"] = self.precision.scaler.state_dict()
        save(state, path)

    def load_checkpoint(self, path) -> int:
        """Restore a checkpoint, all or nothing: the file, the run description, the model,
        the optimizer, the schedule, the history and the epoch are all checked before any of
        them is changed. Raises ValueError (KeyError/TypeError from the state checks) naming
        the fault."""
        state = load(path)
        apply = check_checkpoint(state, _unwrap(self.model), self.optimizer, self.scheduler,
                                 self.run, where=f"resume: {path}")
        scaler = state.get("scaler")
        if self.precision.scaler is not None and isinstance(scaler, dict) and scaler:
            self.precision.scaler.load_state_dict(scaler)
        return apply(self)

    def train_epoch(self, loader, epoch: int, epochs: int) -> tuple[float, float]:
        from .nn.utils import clip_grad_norm_, clip_grad_value_

        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        total_loss = total_correct = count = 0.0
        start = time.perf_counter()
        bar = _progress(loader, self.progress, f"epoch {epoch + 1}/{epochs}")
        mixed = self.precision
        for x, y in bar:
            x, y = _on(self.device, x, y)
            self.optimizer.zero_grad()
            with mixed.autocast():
                out = self.model(x)
                loss = self.loss_fn(out, y)
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"fit: the loss became {value} at epoch {epoch + 1}; "
                                         "lower the learning rate or clip the gradients")
            mixed.backward(loss)
            if self.clip_grad_value is not None or self.clip_grad_norm is not None:
                mixed.unscale_(self.optimizer)
            if self.clip_grad_value is not None:
                clip_grad_value_(params, self.clip_grad_value)
            if self.clip_grad_norm is not None:
                clip_grad_norm_(params, self.clip_grad_norm)
            mixed.step(self.optimizer)
            n = len(y)
            total_loss += value * n
            total_correct += accuracy(out, y) * n
            count += n
            if bar is not loader:
                rate = count / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{total_loss / count:.4f}",
                                acc=f"{total_correct / count:.4f}", img_s=f"{rate:.0f}",
                                refresh=False)
        if count == 0:
            raise ValueError("fit: the training loader yielded no samples")
        total_loss, total_correct, count = _sum_over_ranks(total_loss, total_correct, count)
        return total_loss / count, total_correct / count


def run_mismatches(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``'name: saved X, now Y'`` for every entry that both run descriptions hold and that
    differs (nested dicts compared key by key)."""
    out = []
    for key in saved:
        if key not in current:
            continue
        a, b = saved[key], current[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out += run_mismatches(a, b, f"{prefix}{key}.")
        elif _norm(a) != _norm(b):
            out.append(f"{prefix}{key}: checkpoint {a!r}, this run {b!r}")
    return out


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def check_checkpoint(state, model, optimizer, scheduler=None, run=None, where="resume"):
    """Check a whole training checkpoint against what it is to be loaded into, changing
    nothing, and return the function that applies it to a :class:`Trainer` (returning the
    number of epochs done). Every fault is a ValueError/TypeError/KeyError naming it."""
    if not isinstance(state, dict):
        raise ValueError(f"{where} is not a training checkpoint")
    for key in ("model", "optimizer", "history", "epoch"):
        if key not in state:
            raise ValueError(f"{where} is not a training checkpoint (no {key!r})")
    if run is not None and isinstance(state.get("run"), dict):
        diff = run_mismatches(state["run"], run)
        if diff:
            raise ValueError(f"{where} was written by another run: {'; '.join(diff)}")
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"{where}: bad epoch count {epoch!r}")
    history = state["history"]
    if not isinstance(history, dict) or not all(isinstance(history.get(k, []), list)
                                                for k in HISTORY_KEYS):
        raise ValueError(f"{where}: bad history record")
    if not hasattr(state["model"], "keys"):
        raise ValueError(f"{where}: the model record is not a state dict")
    own, saved = list(model._state_targets()), list(state["model"].keys())
    missing = [k for k in own if k not in state["model"]]
    unexpected = [k for k in saved if k not in own]
    if missing or unexpected:
        raise ValueError(f"{where} does not fit this model: {len(missing)} of its "
                         f"{len(own)} tensors missing (e.g. {missing[:3]}), {len(unexpected)} "
                         f"unexpected (e.g. {unexpected[:3]}); another architecture?")
    model_values, _ = model._checked_state(state["model"], strict=True)
    from .optim.optimizer import _checked_state

    groups, opt_state = _checked_state(optimizer, state["optimizer"])
    sched = state.get("scheduler")
    if scheduler is not None and sched is not None:
        mine = scheduler.state_dict()
        if not isinstance(sched, dict) or set(sched) != set(mine):
            raise ValueError(f"{where}: the saved schedule is not a {type(scheduler).__name__}")
        for k, v in sched.items():
            if not isinstance(v, type(mine[k])) and not (
                    isinstance(v, (int, float)) and isinstance(mine[k], (int, float))):
                raise ValueError(f"{where}: schedule field {k!r} is {v!r}")

    def apply(trainer) -> int:
        model._assign_state(model_values)
        trainer.optimizer.param_groups, trainer.optimizer.state = groups, opt_state
        if scheduler is not None and sched is not None:
            scheduler.load_state_dict(sched)
        trainer.history = {k: list(history.get(k, [])) for k in HISTORY_KEYS}
        return epoch

    return apply


def _progress(loader, enabled: bool, desc: str):
    if not enabled:
        return loader
    from tqdm.auto import tqdm

    # tqdm.auto's class calls iter() on its argument in __init__ and again when iterated;
    # a DataLoader starts its next epoch at every iter(), so the bar would skip one (and a
    # rank with the bar would read other batches than a rank without): one iterator here
    total = len(loader) if hasattr(loader, "__len__") else None
    return tqdm(iter(loader), total=total, desc=desc, leave=True, dynamic_ncols=True,
                unit="batch")


def fit(model, train, val=None, epochs: int = 10, optimizer=None,
        loss: Callable = F.cross_entropy, callbacks: Iterable[Callback] = (),
        scheduler=None, clip_grad_norm: float | None = None,
        clip_grad_value: float | None = None, resume=None, progress: bool = True,
        log: Callable[[str], None] = print, device: str | None = None,
        run: dict | None = None, precision: str = "fp32") -> dict[str, list]:
    """Train ``model`` for ``epochs`` epochs and return the history.

    ``optimizer`` defaults to Adam(lr=1e-3); ``scheduler`` (any of convnet.optim's
    schedules) steps once per epoch; ``resume`` names a checkpoint written by
    :class:`ModelCheckpoint` to continue from (model, optimizer, schedule, history and the
    epoch count come back; the loaders' shuffling continues from that epoch when they have
    a seed). ``device="cuda"`` moves each batch to the GPU (the model must be there).

    ``precision``: 'fp32', 'bf16' (the forward pass under ``convnet.amp.autocast``) or
    'fp16' (autocast and a ``GradScaler``); the weights stay float32 either way.

    ``run`` describes the run (e.g. ``{"model": "lenet", "model_options": {...},
    "training": {...}}``, JSON-like values): it is stored in every checkpoint and, on
    ``resume``, compared with the checkpoint's; any difference is a ValueError naming it.
    The whole checkpoint is checked before anything is restored.

    Under :mod:`convnet.distributed` (the model wrapped in DistributedDataParallel, the
    loaders sharded with ``convnet.distributed.shard_loader``) every rank runs this loop;
    the metrics are summed over the ranks, and only rank 0 shows progress, logs and
    writes checkpoints. Every rank resumes from the same checkpoint file.
    """
    from .optim import Adam

    if epochs < 0:
        raise ValueError(f"epochs: must be >= 0, got {epochs}")
    optimizer = optimizer or Adam(model.parameters(), lr=1e-3)
    if _rank_world()[0] != 0:
        progress, log = False, (lambda message: None)
    callbacks = list(callbacks)
    if scheduler is not None:
        callbacks.append(LRSchedulerCallback(scheduler))
    # schedules step before any checkpoint is written, so that a checkpoint holds the
    # learning rate of the next epoch and a resumed run does not repeat one
    callbacks.sort(key=lambda cb: not isinstance(cb, LRSchedulerCallback))
    trainer = Trainer(model, optimizer, loss, callbacks, clip_grad_norm, clip_grad_value,
                      progress, log, device, run, precision)
    start_epoch = 0
    if resume is not None:
        start_epoch = trainer.load_checkpoint(resume)
        if hasattr(train, "set_epoch"):
            train.set_epoch(start_epoch)
        log(f"resumed from {resume} after epoch {start_epoch}")
    for cb in callbacks:
        cb.on_train_begin(trainer)
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        train_loss, train_acc = trainer.train_epoch(train, epoch, epochs)
        seconds = time.perf_counter() - t0
        logs = {"loss": train_loss, "accuracy": train_acc,
                "lr": optimizer.param_groups[0]["lr"], "epoch_seconds": seconds}
        if val is not None:
            logs["val_loss"], logs["val_accuracy"] = evaluate(model, val, loss, device,
                                                              precision)
        for key in HISTORY_KEYS:
            trainer.history[key].append(logs.get(key))
        log(_epoch_line(epoch, epochs, logs))
        for cb in callbacks:
            cb.on_epoch_end(trainer, epoch, logs)
        if trainer.stop:
            break
    for cb in callbacks:
        cb.on_train_end(trainer)
    return trainer.history


def _epoch_line(epoch, epochs, logs) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}", f"loss {logs['loss']:.4f}",
             f"acc {logs['accuracy']:.4f}"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_acc {logs['val_accuracy']:.4f}"]
    parts += [f"lr {logs['lr']:.3g}", f"{logs['epoch_seconds']:.1f}s"]
    return "  ".join(parts)


def plot_history(history: dict, path) -> None:
    """Learning curves (loss and accuracy per epoch, train and validation) as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("plot: matplotlib is not installed (pip install convnet[plot])") \
            from exc
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, history[key], "o-", label="train")
        val = [v for v in history.get(f"val_{key}", []) if v is not None]
        if val:
            ax.plot(epochs[: len(val)], val, "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)


__all__ = ["fit", "evaluate", "accuracy", "check_checkpoint", "run_mismatches", "Callback",
           "EarlyStopping", "ModelCheckpoint", "LRSchedulerCallback", "plot_history"]
