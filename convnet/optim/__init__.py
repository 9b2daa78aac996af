"""Optimizers and learning-rate schedules (``torch.optim`` names and formulas)."""

from . import lr_scheduler
from .optimizer import SGD, Adagrad, Adam, AdamW, NAdam, Nadam, Optimizer, RMSprop

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "NAdam", "Nadam",
           "lr_scheduler"]
