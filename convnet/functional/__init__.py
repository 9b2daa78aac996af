"""Differentiable ops (PyTorch's ``torch.nn.functional`` names and argument orders)."""

from ._extra import adaptive_avg_pool2d, local_response_norm, pad
from ._loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    one_hot,
    smooth_l1_loss,
)
from ._nn import (
    alpha_dropout,
    avg_pool2d,
    batch_norm,
    conv2d,
    dropout,
    elu,
    leaky_relu,
    linear,
    log_softmax,
    max_pool2d,
    relu,
    selu,
    sigmoid,
    softmax,
    tanh,
)
from ._ops import cat, stack, where

__all__ = [
    "adaptive_avg_pool2d", "alpha_dropout", "avg_pool2d", "batch_norm", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cat", "conv2d", "cross_entropy", "dropout", "elu",
    "l1_loss", "leaky_relu", "linear", "local_response_norm", "log_softmax", "max_pool2d",
    "mse_loss", "nll_loss", "pad", "relu", "selu", "sigmoid", "softmax", "stack", "tanh", "where",
    "huber_loss", "kl_div", "one_hot", "smooth_l1_loss",
]

# recurrent layers and cells
from ._rnn import gru_cell, lstm_cell, recurrent_layer, rnn_relu_cell, rnn_tanh_cell  # noqa: E402

__all__ += ["gru_cell", "lstm_cell", "recurrent_layer", "rnn_relu_cell", "rnn_tanh_cell"]

# Decoders and generators: transposed convolution, interpolation, embedding.
from ._upsample import conv_transpose2d, interpolate  # noqa: E402

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
