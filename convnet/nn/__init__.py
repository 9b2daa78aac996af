"""Layers and models: PyTorch's ``torch.nn`` names."""

import sys

from .. import functional
from . import init, utils
from .extra import AdaptiveAvgPool2d, LocalResponseNorm
from .layers import (
    ELU,
    SELU,
    AlphaDropout,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .module import Module, ModuleList, Parameter, Sequential

# ``import convnet.nn.functional as F`` is convnet.functional itself, as in PyTorch
sys.modules[f"{__name__}.functional"] = functional

__all__ = [
    "Module", "ModuleList", "Parameter", "Sequential", "Linear", "Conv2d", "MaxPool2d",
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Dropout", "AlphaDropout", "Flatten", "Identity",
    "ReLU", "LeakyReLU", "ELU", "SELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "init",
    "utils", "AdaptiveAvgPool2d", "LocalResponseNorm",
]

# recurrent layers and cells
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: E402

__all__ += ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

# Decoders and generators.
from .upsample import (  # noqa: E402
    ConvTranspose2d,
    Upsample,
    UpsamplingBilinear2d,
    UpsamplingNearest2d,
)

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
