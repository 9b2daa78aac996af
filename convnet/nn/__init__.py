"""Layers and models: PyTorch's ``torch.nn`` names."""

import sys

from .. import functional
from . import init, layers, utils
from .layers import *  # noqa: F403  (the layers, listed in layers.__all__)
from .module import Module, ModuleList, Parameter, Sequential
from .pool_norm import AdaptiveAvgPool2d, LocalResponseNorm

# ``import convnet.nn.functional as F`` is convnet.functional itself, as in PyTorch
sys.modules[f"{__name__}.functional"] = functional

__all__ = ["Module", "ModuleList", "Parameter", "Sequential", "init", "utils",
           "AdaptiveAvgPool2d", "LocalResponseNorm", *layers.__all__]

# PyTorch's torch.nn.utils.fusion, also under torch.nn.utils (fuse_conv_bn_eval, ...)
from . import fusion  # noqa: E402

utils.fusion = fusion
for _name in ("fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
              "fuse_linear_bn_weights"):
    setattr(utils, _name, getattr(fusion, _name))
sys.modules[f"{__name__}.utils.fusion"] = fusion

# recurrent layers and cells
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: E402

__all__ += ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

# Decoders and generators.
from .conv_transpose import ConvTranspose2d  # noqa: E402
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d  # noqa: E402

__all__ += ["ConvTranspose2d", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d"]
from .embedding import Embedding  # noqa: E402

__all__ += ["Embedding"]

# Loss modules.
from .loss import (  # noqa: E402
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)

__all__ += ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
            "BCELoss", "BCEWithLogitsLoss", "KLDivLoss"]

# Normalisation over features, 1-D layers, containers and small layers.
from .containers import ModuleDict, ParameterDict, ParameterList  # noqa: E402
from .conv1d import AvgPool1d, Conv1d, MaxPool1d  # noqa: E402
from .norm import GroupNorm, LayerNorm  # noqa: E402
from .simple import Dropout1d, Dropout2d, Softplus, Unflatten  # noqa: E402

__all__ += ["ModuleDict", "ParameterDict", "ParameterList", "AvgPool1d", "Conv1d", "MaxPool1d",
            "GroupNorm", "LayerNorm", "Dropout1d", "Dropout2d", "Softplus", "Unflatten"]

from . import parallel  # noqa: E402

__all__ += ["parallel"]
from .sync_batchnorm import SyncBatchNorm  # noqa: E402

__all__ += ["SyncBatchNorm"]
