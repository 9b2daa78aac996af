"""Optimizers and learning-rate schedules (``torch.optim`` names and formulas)."""

from . import lr_scheduler
from .adadelta_rprop import Adadelta, Rprop
from .lbfgs import LBFGS
from .optimizer import SGD, Adagrad, Adam, AdamW, NAdam, Nadam, Optimizer, RMSprop

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "NAdam", "Nadam",
           "Adadelta", "Rprop", "LBFGS", "lr_scheduler"]
