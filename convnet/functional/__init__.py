"""Differentiable ops (PyTorch's ``torch.nn.functional`` names and argument orders)."""

from . import _nn
from ._nn import *  # noqa: F403  (the ops of torch.nn.functional, listed in _nn.__all__)
from ._ops import cat, stack, where
from ._pool_norm import adaptive_avg_pool2d, local_response_norm, pad

__all__ = ["adaptive_avg_pool2d", "cat", "local_response_norm", "pad", "stack", "where",
           *_nn.__all__]

# recurrent layers and cells
from ._rnn import gru_cell, lstm_cell, recurrent_layer, rnn_relu_cell, rnn_tanh_cell  # noqa: E402

__all__ += ["gru_cell", "lstm_cell", "recurrent_layer", "rnn_relu_cell", "rnn_tanh_cell"]

# Decoders and generators: transposed convolution, interpolation, embedding.
from ._conv_transpose import conv_transpose2d  # noqa: E402
from ._interpolate import interpolate  # noqa: E402

__all__ += ["conv_transpose2d", "interpolate"]
from ._embedding import embedding  # noqa: E402

__all__ += ["embedding"]
