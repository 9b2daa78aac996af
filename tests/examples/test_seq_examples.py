"""The sequence-to-vector, sequence-to-sequence and vector-to-sequence examples: their
pieces against hand computations, and short runs end to end."""

import json

import numpy as np
import pytest

import convnet as cn
from convnet.examples import seq_classify, seq_forecast, seq_generate


@pytest.fixture(autouse=True)
def _keep_thread_count():
    # The runs below pass --threads 1 (fast on a busy machine); the count is global.
    n = cn.get_num_threads()
    yield
    cn.set_num_threads(n)


# ---- forecasting: the baselines' arithmetic ----

def test_naive_forecast_and_lag_matrix_by_hand():
    s = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    np.testing.assert_array_equal(seq_forecast.naive_forecast(s), [1, 2, 4, 7])
    a, y = seq_forecast.lag_matrix(s, 2)
    np.testing.assert_array_equal(a, [[1, 2, 1], [2, 4, 1], [4, 7, 1]])
    np.testing.assert_array_equal(y, [4, 7, 11])
    with pytest.raises(ValueError, match="k"):
        seq_forecast.lag_matrix(s, 5)


def test_autoregression_recovers_an_exact_ar2_process():
    s = [0.3, -0.2]
    for _ in range(60):
        s.append(0.5 * s[-1] - 0.3 * s[-2] + 0.1)
    s = np.array(s)  # exact, without noise: least squares must find the coefficients
    coef = seq_forecast.fit_autoregressive(s, 2)
    np.testing.assert_allclose(coef, [-0.3, 0.5, 0.1], atol=1e-8)
    pred = seq_forecast.ar_forecast(s, coef)
    np.testing.assert_allclose(pred, s[2:], atol=1e-10)
    # one prediction by hand: 0.5 * s[1] - 0.3 * s[0] + 0.1
    assert pred[0] == pytest.approx(0.5 * -0.2 - 0.3 * 0.3 + 0.1)


def test_choose_ar_order_prefers_enough_lags():
    rng = np.random.default_rng(0)
    s = [0.0, 0.0, 0.0]
    for _ in range(2000):
        s.append(0.6 * s[-1] - 0.5 * s[-2] + 0.3 * s[-3] + rng.standard_normal())
    k, scores = seq_forecast.choose_ar_order(np.array(s), orders=(1, 2, 4, 8))
    assert k >= 4 and scores[1] > scores[4]


def test_forecast_example_learns_and_beats_the_naive_baseline(tmp_path):
    report, plot = tmp_path / "f.json", tmp_path / "f.png"
    out = seq_forecast.main(["--length", "700", "--window", "30", "--hidden", "24",
                             "--epochs", "3", "--no-progress", "--threads", "1",
                             "--report", str(report), "--plot", str(plot)])
    h = out["history"]
    assert h[-1]["train_loss"] < 0.5 * h[0]["train_loss"]
    assert out["lstm_mse"] < 0.5 * out["naive_mse"]
    saved = json.loads(report.read_text())
    assert saved["lstm_mse"] == pytest.approx(out["lstm_mse"])
    assert {"naive_mse", "ar_mse", "ar_order"} <= set(saved)
    assert plot.stat().st_size > 1000


def test_forecast_by_truncated_bptt_learns():
    out = seq_forecast.run(length=700, hidden=24, epochs=8, batch_size=4, tbptt=15, lr=1e-2,
                           progress=False, log=lambda s: None)
    h = out["history"]
    assert out["tbptt"] == 15 and h[-1]["train_loss"] < 0.5 * h[0]["train_loss"]
    assert out["lstm_mse"] < 0.5 * out["naive_mse"]
    with pytest.raises(ValueError, match="tbptt"):
        seq_forecast.run(length=700, batch_size=4, tbptt=500, progress=False)


# ---- vector to sequence ----

def test_generator_encoding_and_shapes():
    p = np.array([[0.5, 0.0, 0.5], [2.0, 2 * np.pi, 1.5]])
    e = seq_generate.encode(p)
    np.testing.assert_allclose(e, [[-1, 0, 1, -1], [1, 0, 1, 1]], atol=1e-6)
    model = seq_generate.Generator(length=7, hidden=5)
    assert model(cn.tensor(e)).shape == (2, 7)


def test_generate_example_fits_held_out_waveforms(tmp_path):
    report, plot = tmp_path / "g.json", tmp_path / "g.png"
    out = seq_generate.main(["--train", "600", "--test", "100", "--length", "30",
                             "--hidden", "32", "--epochs", "4", "--lr", "1e-2",
                             "--no-progress", "--threads", "1", "--report", str(report),
                             "--plot", str(plot)])
    assert out["test_mse"] < 0.6 * out["baseline_mse"]
    assert json.loads(report.read_text())["test_mse"] == pytest.approx(out["test_mse"])
    assert plot.stat().st_size > 1000


# ---- sequence to vector ----

def test_row_classifier_reads_rows_as_steps():
    cn.manual_seed(0)
    model = seq_classify.RowClassifier("gru", hidden=8, layers=2, dropout=0.1)
    assert model.rnn.num_layers == 2 and model.rnn.dropout == 0.1
    x = cn.tensor(np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32))
    assert model(x).shape == (3, 10)
    with pytest.raises(ValueError, match="cell"):
        seq_classify.RowClassifier("transformer")


def test_classify_example_learns(tmp_path):
    report = tmp_path / "c.json"
    out = seq_classify.main(["--limit", "768", "--test-limit", "500", "--hidden", "32",
                             "--batch-size", "64", "--epochs", "2", "--lr", "1e-2",
                             "--no-progress", "--threads", "1", "--report", str(report)])
    loss = out["history"]["loss"]
    assert loss[1] < 0.85 * loss[0]
    assert out["test_accuracy"] > 0.35  # chance is 0.1
    assert json.loads(report.read_text())["train_images"] == 768
