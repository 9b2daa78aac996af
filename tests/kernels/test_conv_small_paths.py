"""The native convolution's paths for small shapes, against the float64 reference: layers
whose one window covers the whole input (LeNet's C5; plain GEMMs in all three passes),
layers over the flat padded image, split into phase planes when strided (forward and data
gradient with up to 128 filters, the weight gradient with 32 filters or 16 channels or
more), small planes with images end to end, the strided data
gradient as sub-pixel convolutions (all phases on one flat copy of dy, or one convolution
per phase on large planes) or col2im (the transposed convolutions of DCGAN and the
autoencoder), strided 1x1 layers on the subsampled image, strided layers on few channels
with the filters as the vector dimension (AlexNet's C1), and the few-pixel forward GEMM
(panels across images, chunked over the batch)."""

import numpy as np
import pytest

import convnet as cn
from convnet.kernels import reference as ref
from tests.helpers import assert_close

K = cn.kernels
pytestmark = pytest.mark.skipif(not cn.backends()["native"]["available"],
                                reason="the native backend is not built")

# x, w, stride, padding
FULLY_CONNECTED = [((128, 16, 5, 5), (120, 16, 5, 5), 1, 0), ((1, 3, 4, 7), (5, 3, 4, 7), 1, 0),
                   ((2, 1, 1, 1), (3, 1, 1, 1), 1, 0), ((3, 2, 3, 3), (33, 2, 3, 3), 2, 0)]
STRIDED = [((3, 8, 9, 11), (16, 8, 3, 3), 2, 1), ((4, 64, 14, 14), (128, 64, 4, 4), 2, 1),
           ((2, 9, 13, 12), (4, 9, 5, 4), 3, 2), ((2, 10, 8, 8), (5, 10, 1, 1), 2, 0),
           ((1, 12, 7, 7), (2, 12, 2, 3), 4, 0), ((2, 8, 14, 15), (40, 8, 4, 4), (2, 3), (1, 2)),
           ((2, 8, 9, 9), (6, 8, 3, 3), 2, "same"), ((2, 1, 14, 14), (64, 1, 4, 4), 2, 1),
           ((1, 8, 130, 130), (64, 8, 3, 3), 2, 1)]
# stride 1, few filters: the product over the flat padded image (no im2col matrix); the
# data gradient of stride-1 layers with few input channels runs there too (flipped filters,
# padding R-1-p, negative when p > R-1)
FLAT = [((16, 6, 14, 14), (16, 6, 5, 5), 1, 0), ((4, 1, 32, 32), (6, 1, 5, 5), 1, 2),
        ((3, 5, 9, 11), (7, 5, 3, 3), 1, 1), ((1, 4, 8, 11), (5, 4, 2, 3), 1, "same"),
        ((2, 3, 5, 5), (4, 3, 5, 5), 1, 4), ((2, 2, 6, 6), (31, 2, 1, 1), 1, 0),
        ((2, 8, 7, 9), (6, 8, 3, 3), 1, 2)]
# stride 1, no cropping, 32 filters or more or 16 channels or more: the weight gradient as
# dot products along the padded planes of chunks of images (the last chunk shorter when
# 130 images do not split evenly), filter and tap counts off the 4 x 6 register tile
FLAT_WEIGHT = [((5, 16, 9, 11), (16, 16, 3, 3), 1, 1), ((7, 3, 10, 10), (33, 3, 3, 3), 1, 0),
               ((3, 20, 6, 7), (40, 20, 2, 3), 1, "same"), ((9, 32, 14, 14), (32, 32, 3, 3), 1, 1),
               ((130, 17, 5, 5), (36, 17, 3, 3), 1, 2), ((2, 64, 7, 7), (64, 64, 3, 3), 1, 1),
               ((3, 1, 12, 12), (48, 1, 5, 5), 1, 0)]
# strided, up to 128 filters: the flat product over the image split into its stride phases
# (forward; the weight gradient at strides up to 2), odd sizes, uneven strides and padding,
# dilation with a stride, 4x4/2 (DCGAN); and stride-1 layers on small planes, whose images go
# end to end in chunks (the last one short)
STRIDED_FLAT = [((3, 16, 14, 14), (32, 16, 3, 3), 2, 1), ((5, 8, 13, 11), (40, 8, 3, 3), 2, 0),
                ((2, 64, 14, 14), (128, 64, 4, 4), 2, 1),
                ((3, 8, 12, 17), (36, 8, 3, 5), (2, 3), (1, 2)),
                ((2, 16, 15, 15), (33, 16, 3, 3), 3, 1), ((3, 20, 17, 16), (32, 20, 3, 3), 2, 2, 2),
                ((37, 32, 7, 7), (64, 32, 2, 2), 1, 1), ((11, 128, 7, 7), (64, 128, 2, 2), 1, 0),
                ((9, 12, 5, 6), (20, 12, 3, 3), 1, 1)]
# 1x1, strided, no padding: subsampled once, then the stride-1 1x1 convolution
STRIDED_POINTWISE = [((3, 16, 28, 28), (32, 16, 1, 1), 2, 0), ((2, 3, 29, 31), (8, 3, 1, 1), 3, 0),
                     ((2, 5, 9, 10), (7, 5, 1, 1), (2, 3), 0), ((2, 4, 1, 9), (6, 4, 1, 1), 2, 0),
                     ((3, 40, 8, 8), (33, 40, 1, 1), 4, 0)]
# strided, at most 4 channels, 32 filters or more: filters as the vector dimension over a
# padded copy of the image (AlexNet's C1); filter counts off the 2-vector tile, rows of
# pixels off the 12-pixel run, dilation
KVEC = [((2, 3, 67, 67), (96, 3, 11, 11), 4, 2), ((3, 1, 28, 28), (32, 1, 4, 4), 2, 1),
        ((2, 3, 17, 19), (40, 3, 3, 3), 2, 1), ((2, 4, 9, 10), (64, 4, 5, 5), 3, 0),
        ((1, 2, 30, 29), (33, 2, 3, 2), (2, 3), (0, 2))]
# dilation 2 on the flat forward (few filters), the flat weight gradient and the
# filters-as-vectors forward
DILATED = [(((2, 3, 10, 10), (3, 3, 3, 3), 1, 1, 2), ("forward",)),
           (((3, 16, 11, 12), (32, 16, 3, 3), 1, 2, 2), ("weight",)),
           (((2, 3, 21, 20), (48, 3, 3, 3), 2, 1, 2), ("forward",))]
FEW_PIXELS = [((150, 64, 7, 7), (40, 64, 3, 3), 1, 1), ((128, 16, 14, 14), (32, 16, 3, 3), 2, 1),
              ((3, 512, 3, 3), (48, 512, 3, 3), 1, 1)]


def _case(geo, dt, seed=0):
    x_shape, w_shape, stride, padding, dilation = (*geo, 1)[:5]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dt)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(dt)
    b = rng.standard_normal(w_shape[0]).astype(dt)
    y_shape, args = K._conv_geometry(x_shape, w_shape, stride, padding, dilation)
    dy = rng.standard_normal(y_shape).astype(dt)
    return x, w, b, dy, args


def _check_all_passes(geo, dt, passes=("forward", "data", "weight")):
    """geo: x shape, w shape, stride, padding[, dilation]."""
    x, w, b, dy, args = _case(geo, dt)
    stride, padding, dilation = (*geo, 1)[2:5]
    if "forward" in passes:
        y = K.conv2d_forward(x, w, b, stride, padding, dilation, backend="native")
        expected = np.empty(y.shape)
        ref.conv2d_forward(x, w, b, expected, *args)
        assert_close(y, expected, dt, "forward", scale=3)
        y = K.conv2d_act_forward(x, w, b, stride, padding, dilation, "tanh", backend="native")
        assert_close(y, np.tanh(expected), dt, "forward + tanh", scale=3)
    if "data" in passes:
        dx = K.conv2d_backward_data(dy, w, x.shape, stride, padding, dilation, backend="native")
        expected = np.empty(x.shape)
        ref.conv2d_backward_data(dy, w, expected, *args)
        assert_close(dx, expected, dt, "data gradient", scale=3)
    if "weight" in passes:
        dw = K.conv2d_backward_weight(dy, x, w.shape, stride, padding, dilation,
                                      backend="native")
        expected = np.empty(w.shape)
        ref.conv2d_backward_weight(dy, x, expected, *args)
        assert_close(dw, expected, dt, "weight gradient", scale=10)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("geo", FULLY_CONNECTED)
def test_fully_connected_convolution(geo, dt):
    _check_all_passes(geo, dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("geo", STRIDED)
def test_strided_data_gradient(geo, dt):
    _check_all_passes(geo, dt, ("data",))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("geo", FLAT)
def test_flat_padded_image_forward_and_data_gradient(geo, dt):
    _check_all_passes(geo, dt, ("forward", "data"))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("geo", FLAT_WEIGHT)
def test_flat_weight_gradient(geo, dt):
    _check_all_passes(geo, dt)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_flat_weight_gradient_on_several_threads(threads):
    """Each thread sums its own images; the partial sums meet once at the end."""
    previous = cn.get_num_threads()
    cn.set_num_threads(threads)
    try:
        _check_all_passes(((37, 16, 11, 10), (40, 16, 3, 3), 1, 1), np.float32, ("weight",))
    finally:
        cn.set_num_threads(previous)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("geo", STRIDED_FLAT)
def test_flat_phase_planes_and_image_chunks(geo, dt):
    _check_all_passes(geo, dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("geo", STRIDED_POINTWISE)
def test_strided_pointwise_convolution(geo, dt):
    _check_all_passes(geo, dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("geo", KVEC)
def test_filters_as_vectors_forward(geo, dt):
    _check_all_passes(geo, dt, ("forward",))


@pytest.mark.parametrize("geo, passes", DILATED)
def test_dilated_paths(geo, passes):
    _check_all_passes(geo, np.float64, passes)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("geo", FEW_PIXELS)
def test_few_pixel_forward(geo, dt):
    _check_all_passes(geo, dt, ("forward",))


def test_transposed_convolutions_of_the_zoo_against_torch():
    from tests.helpers import torch_or_skip

    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    for x_shape, w_shape, s, p, op in [((8, 128, 7, 7), (128, 64, 4, 4), 2, 1, 0),
                                       ((8, 32, 7, 7), (32, 16, 3, 3), 2, 1, 1)]:
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))
        y = K.conv_transpose2d_forward(x, w, None, s, p, op, backend="native")
        expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x),
                                                        torch.from_numpy(w), None, s, p, op)
        assert_close(y, expected.numpy(), np.float64, "conv_transpose2d")
