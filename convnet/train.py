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
from .autograd import no_grad
from .serialization import load, save
from .tensor import Tensor

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds")


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of rows whose largest logit is the label."""
    pred = logits._data.argmax(axis=1)
    return float((pred == labels._data).mean())


def _on(device, x, y):
    return (x, y) if device in (None, "cpu") else (x.to(device), y.to(device))


def evaluate(model, loader, loss_fn: Callable = F.cross_entropy,
             device: str | None = None) -> tuple[float, float]:
    """Mean loss and accuracy over a loader, in eval mode and without a graph."""
    was_training = model.training
    model.eval()
    total_loss = total_correct = count = 0.0
    with no_grad():
        for x, y in loader:
            x, y = _on(device, x, y)
            out = model(x)
            n = len(y)
            total_loss += float(loss_fn(out, y).item()) * n
            total_correct += accuracy(out, y) * n
            count += n
    model.train(was_training)
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
                 progress, log, device):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
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
        save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
              "scheduler": self.scheduler.state_dict() if self.scheduler else None,
              "history": self.history, "epoch": epochs_done}, path)

    def load_checkpoint(self, path) -> int:
        state = load(path)
        for key in ("model", "optimizer", "history", "epoch"):
            if key not in state:
                raise ValueError(f"resume: {path} is not a training checkpoint (no {key!r})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.history = {k: list(state["history"].get(k, [])) for k in HISTORY_KEYS}
        return int(state["epoch"])

    def train_epoch(self, loader, epoch: int, epochs: int) -> tuple[float, float]:
        from .nn.utils import clip_grad_norm_, clip_grad_value_

        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        total_loss = total_correct = count = 0.0
        start = time.perf_counter()
        bar = _progress(loader, self.progress, f"epoch {epoch + 1}/{epochs}")
        for x, y in bar:
            x, y = _on(self.device, x, y)
            self.optimizer.zero_grad()
            out = self.model(x)
            loss = self.loss_fn(out, y)
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"fit: the loss became {value} at epoch {epoch + 1}; "
                                         "lower the learning rate or clip the gradients")
            loss.backward()
            if self.clip_grad_value is not None:
                clip_grad_value_(params, self.clip_grad_value)
            if self.clip_grad_norm is not None:
                clip_grad_norm_(params, self.clip_grad_norm)
            self.optimizer.step()
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
        return total_loss / count, total_correct / count


def _progress(loader, enabled: bool, desc: str):
    if not enabled:
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, desc=desc, leave=True, dynamic_ncols=True, unit="batch")


def fit(model, train, val=None, epochs: int = 10, optimizer=None,
        loss: Callable = F.cross_entropy, callbacks: Iterable[Callback] = (),
        scheduler=None, clip_grad_norm: float | None = None,
        clip_grad_value: float | None = None, resume=None, progress: bool = True,
        log: Callable[[str], None] = print, device: str | None = None) -> dict[str, list]:
    """Train ``model`` for ``epochs`` epochs and return the history.

    ``optimizer`` defaults to Adam(lr=1e-3); ``scheduler`` (any of convnet.optim's
    schedules) steps once per epoch; ``resume`` names a checkpoint written by
    :class:`ModelCheckpoint` to continue from (model, optimizer, schedule, history and the
    epoch count come back; the loaders' shuffling continues from that epoch when they have
    a seed). ``device="cuda"`` moves each batch to the GPU (the model must be there).
    """
    from .optim import Adam

    if epochs < 0:
        raise ValueError(f"epochs: must be >= 0, got {epochs}")
    optimizer = optimizer or Adam(model.parameters(), lr=1e-3)
    callbacks = list(callbacks)
    if scheduler is not None:
        callbacks.append(LRSchedulerCallback(scheduler))
    # schedules step before any checkpoint is written, so that a checkpoint holds the
    # learning rate of the next epoch and a resumed run does not repeat one
    callbacks.sort(key=lambda cb: not isinstance(cb, LRSchedulerCallback))
    trainer = Trainer(model, optimizer, loss, callbacks, clip_grad_norm, clip_grad_value,
                      progress, log, device)
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
            logs["val_loss"], logs["val_accuracy"] = evaluate(model, val, loss, device)
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


__all__ = ["fit", "evaluate", "accuracy", "Callback", "EarlyStopping", "ModelCheckpoint",
           "LRSchedulerCallback", "plot_history"]
