import numpy as np
import pytest

from convnet.data import (
    Compose,
    GaussianNoise,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomShift,
)


def batch(b=6, c=2, h=9, w=9, seed=0):
    return np.random.default_rng(seed).random((b, c, h, w), dtype=np.float32)


@pytest.mark.parametrize("t", [Normalize(0.5, 0.25), RandomShift(2), RandomCrop(9, 2),
                               RandomHorizontalFlip(), RandomRotation(15),
                               RandomRotation(15, "nearest"), GaussianNoise(0.1),
                               Compose([RandomShift(1), RandomHorizontalFlip()])],
                         ids=repr)
def test_shape_dtype_kept_and_input_untouched(t):
    x = batch()
    before = x.copy()
    out = t(x, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(x, before)


def test_normalize_exact_per_channel():
    x = batch(c=3)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    out = Normalize(mean, std)(x)
    expected = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std,
                                                                           np.float32)[:, None,
                                                                                      None]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(Normalize(0.2860, 0.3530)(x), (x - 0.2860) / 0.3530, rtol=1e-6,
                               atol=1e-6)


def test_normalize_refuses_wrong_channels_and_bad_std():
    with pytest.raises(ValueError, match="3 values for a batch of 2 channels"):
        Normalize([0, 0, 0], [1, 1, 1])(batch(c=2))
    with pytest.raises(ValueError, match="positive"):
        Normalize(0, 0)


def test_non_batch_input_refused():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        RandomShift(1)(np.zeros((3, 8, 8), np.float32))


def test_flip_exact():
    x = batch()
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x), x)
    t = RandomHorizontalFlip(0.5)
    mask = t.get_params(len(x), np.random.default_rng(3))
    assert 0 < mask.sum() < len(mask)  # seed 3 flips some, not all
    out = t(x, np.random.default_rng(3))
    np.testing.assert_array_equal(out[mask], x[mask][..., ::-1])
    np.testing.assert_array_equal(out[~mask], x[~mask])


def bright_pixel_batch(b, size, at):
    x = np.zeros((b, 1, size, size), np.float32)
    x[:, 0, at[0], at[1]] = 1.0
    return x


def test_shift_moves_content_by_drawn_amount():
    t = RandomShift(3)
    x = bright_pixel_batch(64, 12, (5, 6))
    dy, dx = t.get_params(64, np.random.default_rng(7))
    assert set(dy.tolist()) == set(range(-3, 4))  # the whole range is drawn
    out = t(x, np.random.default_rng(7))
    for k in range(64):
        assert out[k].sum() == 1.0
        assert out[k, 0, 5 + dy[k], 6 + dx[k]] == 1.0


def test_shift_fills_uncovered_border():
    t = RandomShift(2, fill=-1.0)
    x = np.ones((1, 1, 6, 6), np.float32)
    out = t.apply(x, (np.array([2]), np.array([-1])))
    assert (out[0, 0, :2] == -1).all() and (out[0, 0, :, -1] == -1).all()
    assert (out[0, 0, 2:, :-1] == 1).all()
    # content shifted past the edge disappears
    edge = bright_pixel_batch(1, 6, (0, 0))
    assert RandomShift(2).apply(edge, (np.array([-1]), np.array([0]))).sum() == 0


def test_random_crop_with_padding():
    x = batch(b=20, c=1, h=10, w=10)
    t = RandomCrop(8, padding=2)
    out = t(x, np.random.default_rng(0))
    assert out.shape == (20, 1, 8, 8)
    # same-size crop of a padded image == a shift by (padding - offset)
    same = RandomCrop(10, padding=2)
    top, left = same.get_params(20, np.random.default_rng(5), image_size=(10, 10))
    np.testing.assert_array_equal(same(x, np.random.default_rng(5)),
                                  RandomShift(2).apply(x, (2 - top, 2 - left)))
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(15, padding=2)(x)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_rotation_zero_is_identity(interpolation):
    x = batch(h=9, w=7)
    np.testing.assert_array_equal(RandomRotation(0, interpolation)(x), x)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("angle, k", [(90, 1), (180, 2), (-90, -1), (270, 3)])
def test_rotation_right_angles_match_rot90(interpolation, angle, k):
    for size in (8, 9):  # even and odd: the centre between pixels or on one
        x = batch(h=size, w=size)
        out = RandomRotation((angle, angle), interpolation)(x, np.random.default_rng(0))
        np.testing.assert_allclose(out, np.rot90(x, k, axes=(2, 3)), atol=1e-5)


def rotate_reference(img, degrees, fill=0.0):
    """Bilinear rotation of one (H, W) image, pixel by pixel (counter-clockwise)."""
    h, w = img.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    t = np.deg2rad(degrees)
    out = np.empty_like(img)

    def at(r, c):
        return img[r, c] if 0 <= r < h and 0 <= c < w else fill

    for i in range(h):
        for j in range(w):
            u, v = j - cx, cy - i
            sx = cx + u * np.cos(t) + v * np.sin(t)
            sy = cy + u * np.sin(t) - v * np.cos(t)
            r0, c0 = int(np.floor(sy)), int(np.floor(sx))
            fy, fx = sy - r0, sx - c0
            out[i, j] = ((1 - fy) * ((1 - fx) * at(r0, c0) + fx * at(r0, c0 + 1))
                         + fy * ((1 - fx) * at(r0 + 1, c0) + fx * at(r0 + 1, c0 + 1)))
    return out


def test_rotation_turns_counter_clockwise_and_interpolates():
    x = bright_pixel_batch(1, 9, (4, 8))  # right of the centre (4, 4)
    out = RandomRotation((90, 90)).apply(x, np.array([90.0]))
    assert out[0, 0, 0, 4] == pytest.approx(1.0)  # now above the centre
    # arbitrary angles, per image, against the pixel-by-pixel formula
    x = batch(b=3, c=2, h=7, w=10)
    angles = np.array([33.0, -12.5, 61.0])
    out = RandomRotation(90, fill=0.25).apply(x, angles)
    for k in range(3):
        for ch in range(2):
            np.testing.assert_allclose(out[k, ch], rotate_reference(x[k, ch], angles[k], 0.25),
                                       atol=1e-5)
    # nearest sampling only ever copies input values or the fill
    near = RandomRotation(90, "nearest").apply(x, angles)
    assert np.isin(near, np.append(x.ravel(), 0.0)).all()


def test_rotation_draws_angles_in_range_per_image():
    t = RandomRotation(10)
    angles = t.get_params(1000, np.random.default_rng(0))
    assert angles.min() >= -10 and angles.max() <= 10 and angles.std() > 5
    x = np.repeat(batch(b=1), 4, axis=0)
    out = t(x, np.random.default_rng(0))
    assert not np.allclose(out[0], out[1])  # independent per image


def test_noise_std_close_to_requested():
    x = np.full((64, 1, 32, 32), 0.5, np.float32)
    out = GaussianNoise(0.2)(x, np.random.default_rng(0))
    noise = out - x
    assert noise.std() == pytest.approx(0.2, rel=0.02)
    assert abs(noise.mean()) < 0.005
    clipped = GaussianNoise(1.0, clip=(0.0, 1.0))(x, np.random.default_rng(0))
    assert clipped.min() == 0.0 and clipped.max() == 1.0


def test_seeded_determinism():
    t = Compose([RandomShift(2), RandomHorizontalFlip(), RandomRotation(10),
                 GaussianNoise(0.05), Normalize(0.5, 0.5)])
    x = batch(b=16)
    a = t(x, np.random.default_rng(42))
    b = t(x, np.random.default_rng(42))
    c = t(x, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_plain_callables_compose():
    t = Compose([lambda x: x * 2, Normalize(0.0, 2.0)])
    x = batch()
    np.testing.assert_allclose(t(x), x, rtol=1e-6)
