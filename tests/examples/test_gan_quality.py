"""The GAN quality metrics: the Fréchet distance against hand-computed values, the two
matrix-root paths against each other, and the classifier's scores and cache."""

import math

import numpy as np
import pytest

import convnet as cn
from convnet.examples import _quality as q

METHODS = ["scipy", "eigh"]


def _method_or_skip(method):
    if method == "scipy":
        pytest.importorskip("scipy.linalg")
    return method


def _rotation(theta):
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


@pytest.mark.parametrize("method", METHODS)
def test_frechet_distance_of_diagonal_gaussians(method):
    # commuting covariances: |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    # = (1 + 4) + (1 - 2)^2 + (2 - 1)^2 + (3 - 3)^2 = 7
    value = q.frechet_distance([0, 0, 5], np.diag([1.0, 4.0, 9.0]), [1, 2, 5],
                               np.diag([4.0, 1.0, 9.0]), _method_or_skip(method))
    assert value == pytest.approx(7.0, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_frechet_distance_of_non_commuting_gaussians(method):
    # For 2x2 matrices with positive eigenvalues l1, l2:
    # Tr(M^(1/2)) = sqrt(l1) + sqrt(l2) = sqrt(Tr M + 2 sqrt(det M)).
    s1 = np.diag([1.0, 4.0])
    r = _rotation(0.7)
    s2 = r @ np.diag([9.0, 0.25]) @ r.T
    m = s1 @ s2
    tr_root = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    mu1, mu2 = np.array([0.5, -1.0]), np.array([2.0, 1.0])
    expected = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * tr_root)
    assert expected == pytest.approx(2.25 + 4 + 5 + 9.25 - 2 * tr_root)
    value = q.frechet_distance(mu1, s1, mu2, s2, _method_or_skip(method))
    assert value == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_frechet_distance_of_identical_sets_is_zero(method):
    f = np.random.default_rng(0).standard_normal((500, 16)) @ np.random.default_rng(1) \
        .standard_normal((16, 16))
    assert q.frechet_distance_features(f, f.copy(), _method_or_skip(method)) == \
        pytest.approx(0.0, abs=1e-7)
    # a shift by a vector d adds |d|^2 and nothing else
    d = np.arange(16) / 8.0
    assert q.frechet_distance_features(f, f + d, method) == pytest.approx(d @ d, rel=1e-7)


def test_scipy_and_eigh_agree_on_random_and_singular_covariances():
    pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(3)
    for rank in (20, 12):   # full rank, then singular (dead features, as ReLUs give)
        a = rng.standard_normal((20, rank))
        b = rng.standard_normal((20, rank))
        s1, s2 = a @ a.T, b @ b.T
        mu1, mu2 = rng.standard_normal(20), rng.standard_normal(20)
        ref = q.frechet_distance(mu1, s1, mu2, s2, "scipy")
        assert q.frechet_distance(mu1, s1, mu2, s2, "eigh") == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_from_samples_approaches_the_exact_value():
    rng = np.random.default_rng(0)
    s1 = np.diag([1.0, 4.0])
    r = _rotation(0.3)
    s2 = r @ np.diag([2.0, 0.5]) @ r.T
    f1 = rng.multivariate_normal([0, 0], s1, size=200_000)
    f2 = rng.multivariate_normal([1, 0], s2, size=200_000)
    exact = q.frechet_distance([0, 0], s1, [1, 0], s2)
    assert q.frechet_distance_features(f1, f2) == pytest.approx(exact, rel=0.02)


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="sigma2"):
        q.frechet_distance([0, 0], np.eye(2), [0, 0], np.eye(3))
    with pytest.raises(ValueError, match="mu2"):
        q.frechet_distance([0, 0], np.eye(2), [0, 0, 0], np.eye(2))
    with pytest.raises(ValueError, match="method"):
        q.frechet_distance([0], [[1.0]], [0], [[1.0]], method="svd")
    with pytest.raises(ValueError, match="features"):
        q.frechet_distance_features(np.zeros((1, 3)), np.zeros((5, 3)))


def test_to_unit_range():
    x = np.array([[[0, 255], [51, 204]]], np.uint8).repeat(14, 1).repeat(14, 2)
    y = q.to_unit_range(x)
    assert y.shape == (1, 1, 28, 28) and y.dtype == np.float32
    assert y.min() == -1.0 and y.max() == 1.0
    with pytest.raises(ValueError, match="images"):
        q.to_unit_range(np.zeros((2, 3, 28, 28), np.float32))


def test_quality_scores_of_a_fixed_classifier():
    cn.manual_seed(0)
    judge = q.FashionClassifier().eval()
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (60, 28, 28)).astype(np.uint8)
    probs, feats = q.classify(judge, real)
    assert probs.shape == (60, 10) and feats.shape == (60, q.FEATURES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    scores = q.quality(judge, real, feats)
    mean_p = probs.mean(axis=0)
    assert scores["confidence"] == pytest.approx(probs.max(axis=1).mean())
    assert scores["class_entropy"] == pytest.approx(-(mean_p * np.log(mean_p)).sum())
    assert 0 <= scores["class_entropy"] <= math.log(10) + 1e-9
    assert sum(scores["class_histogram"]) == 60
    assert scores["class_histogram"] == np.bincount(probs.argmax(1), minlength=10).tolist()
    assert scores["frechet"] == pytest.approx(0.0, abs=1e-6)   # the same images


def test_classifier_trains_and_the_cache_round_trips(tmp_path):
    from convnet.data import load_embedded_sample

    sample = load_embedded_sample()
    (x, y), (xt, yt) = sample["train"], sample["test"]
    model, acc = q.train_classifier((x[:1500], y[:1500]), (xt[:500], yt[:500]), epochs=2,
                                    batch_size=64, progress=False, log=lambda *_: None)
    assert acc > 0.6   # ten classes: chance is 0.1
    path = tmp_path / "judge.safetensors"
    cn.save({"model": model.state_dict(), "test_accuracy": acc}, path)
    loaded, info = q.load_or_train_classifier(path, log=lambda *_: None)
    assert info == {"path": str(path), "cached": True, "test_accuracy": acc}
    images = xt[:20]
    np.testing.assert_array_equal(q.classify(loaded, images)[0], q.classify(model, images)[0])


def test_an_untrained_classifier_survives_the_cache(tmp_path):
    model = q.FashionClassifier()   # num_batches_tracked still a 0-d array
    path = tmp_path / "fresh.safetensors"
    cn.save({"model": model.state_dict(), "test_accuracy": 0.1}, path)
    loaded, _ = q.load_or_train_classifier(path, log=lambda *_: None)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(v, v2)


def test_default_cache_path_names_the_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = q.default_classifier_path("full", 2, 0)
    assert a.startswith(str(tmp_path / "convnet")) and a.endswith(".safetensors")
    assert a != q.default_classifier_path("embedded", 2, 0)
    assert a != q.default_classifier_path("full", 3, 0)
