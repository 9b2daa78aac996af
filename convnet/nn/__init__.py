"""Layers and models: PyTorch's ``torch.nn`` names."""

from . import init, layers, utils
from .layers import *  # noqa: F403  (the layers, listed in layers.__all__)
from .module import Module, ModuleList, Parameter, Sequential
from .pool_norm import AdaptiveAvgPool2d, LocalResponseNorm

__all__ = ["Module", "ModuleList", "Parameter", "Sequential", "init", "utils",
           "AdaptiveAvgPool2d", "LocalResponseNorm", *layers.__all__]

# recurrent layers and cells
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: E402

__all__ += ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

# Decoders and generators.
from .conv_transpose import ConvTranspose2d  # noqa: E402
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d  # noqa: E402

__all__ += ["ConvTranspose2d", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d"]
from .embedding import Embedding  # noqa: E402

__all__ += ["Embedding"]
