"""Differentiable ops (PyTorch's ``torch.nn.functional`` names and argument orders)."""

from . import _loss, _nn
from ._loss import *  # noqa: F403  (the losses and one_hot, listed in _loss.__all__)
from ._nn import *  # noqa: F403  (the ops of torch.nn.functional, listed in _nn.__all__)
from ._ops import cat, stack, where
from ._pool_norm import adaptive_avg_pool2d, local_response_norm, pad

__all__ = ["adaptive_avg_pool2d", "cat", "local_response_norm", "pad", "stack", "where",
           *_nn.__all__, *_loss.__all__]

# recurrent layers and cells
from ._rnn import gru_cell, lstm_cell, recurrent_layer, rnn_relu_cell, rnn_tanh_cell  # noqa: E402

__all__ += ["gru_cell", "lstm_cell", "recurrent_layer", "rnn_relu_cell", "rnn_tanh_cell"]

# Decoders and generators: transposed convolution, interpolation, embedding.
from ._conv_transpose import conv_transpose2d  # noqa: E402
from ._interpolate import interpolate  # noqa: E402

__all__ += ["conv_transpose2d", "interpolate"]
from ._embedding import embedding  # noqa: E402

__all__ += ["embedding"]

# Normalisation over features, 1-D convolution and pooling, softplus, channel dropout.
from ._misc import dropout1d, dropout2d, softplus  # noqa: E402
from ._norm import group_norm, layer_norm  # noqa: E402
from ._onedim import avg_pool1d, conv1d, max_pool1d  # noqa: E402

__all__ += ["dropout1d", "dropout2d", "softplus", "group_norm", "layer_norm", "avg_pool1d",
            "conv1d", "max_pool1d"]

from ._nn import elu_, leaky_relu_, relu_  # noqa: E402 - PyTorch's in-place forms

__all__ += ["elu_", "leaky_relu_", "relu_"]

# Fused convolution/linear + activation (convnet extensions; nn.Sequential uses them).
from ._fused import conv2d_act, fusable_activation, linear_act  # noqa: E402

__all__ += ["conv2d_act", "fusable_activation", "linear_act"]
