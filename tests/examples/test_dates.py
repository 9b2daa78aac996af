"""The encoder-decoder date translator: its data plumbing, teacher forcing against greedy
decoding, and a short training run."""

import datetime as dt
import json

import numpy as np
import pytest

import convnet as cn
from convnet.data.sequences import DATE_FORMATS, human_date
from convnet.examples import dates


@pytest.fixture(autouse=True)
def _keep_thread_count():
    # The runs below pass --threads 1 (fast on a busy machine); the count is global.
    n = cn.get_num_threads()
    yield
    cn.set_num_threads(n)


def test_vocab_covers_every_style_and_pads_on_the_left():
    vocab = dates.Vocab()
    day = dt.date(2023, 9, 27)  # a Wednesday in September: the longest names
    texts = [human_date(day, s) for s in DATE_FORMATS]
    x = vocab.encode_inputs(texts)
    assert x.shape == (len(texts), vocab.max_length, vocab.size)
    np.testing.assert_array_equal(x.sum(axis=2), 1.0)  # exactly one symbol per step
    for row, text in zip(x, texts):
        pad = vocab.max_length - len(text)
        assert (row[:pad, 0] == 1).all() and (row[pad:, 0] == 0).all()
        decoded = "".join(vocab.chars[k - 1] for k in row[pad:].argmax(axis=1))
        assert decoded == text
    with pytest.raises(ValueError, match="vocabulary"):
        vocab.encode_inputs(["22 Avril 2019 ü"])


def test_teacher_forcing_inputs_are_the_targets_shifted_right():
    vocab = dates.Vocab()
    y = vocab.encode_targets(["2019-04-22", "1950-01-01"])
    assert vocab.decode(y) == ["2019-04-22", "1950-01-01"]
    x = vocab.decoder_inputs(y)
    assert x.shape == (2, 10, 12)
    assert (x[:, 0].argmax(axis=1) == vocab.start).all()
    np.testing.assert_array_equal(x[:, 1:].argmax(axis=2), y[:, :-1])


def test_held_out_dates_are_disjoint_from_training_dates():
    train, test = dates.split_dates(500, seed=3)
    assert len(test) == 500 and not set(train) & set(test)
    assert len(train) + len(test) == (dt.date(2049, 12, 31) - dt.date(1950, 1, 1)).days + 1


def test_greedy_decoding_agrees_with_teacher_forcing_on_its_own_output():
    # Fed its own greedy output as the teacher-forced inputs, the decoder must produce the
    # same characters: the state is carried across decoding steps exactly as across a
    # whole sequence.
    cn.manual_seed(0)
    vocab = dates.Vocab()
    model = dates.DateTranslator(vocab.size, hidden=16, layers=2, dropout=0.3)
    model.eval()
    x = cn.tensor(vocab.encode_inputs(["April 22, 2019", "22/04/2019", "1999.12.31"]))
    with cn.no_grad():
        greedy = model.greedy(x)
        logits = model(x, cn.tensor(vocab.decoder_inputs(greedy))).numpy()
    np.testing.assert_array_equal(logits.argmax(axis=2), greedy)


def test_dates_example_learns(tmp_path):
    report = tmp_path / "d.json"
    out = dates.main(["--hidden", "48", "--epochs", "2", "--steps-per-epoch", "60",
                      "--batch-size", "32", "--lr", "1e-2", "--test", "100", "--no-progress",
                      "--threads", "1", "--report", str(report),
                      "--translate", "April 22, 2019", "1.1.2000"])
    loss = [h["train_loss"] for h in out["history"]]
    # ln(11) = 2.40 is a uniform guess; the fixed '-' and the century digits alone take
    # the loss well below it.
    assert loss[1] < 0.75 * loss[0] and loss[1] < 1.6
    saved = json.loads(report.read_text())
    assert saved["test_dates"] == 100 and 0.0 <= saved["test_exact_match"] <= 1.0
    assert sorted(saved["translations"]) == ["1.1.2000", "April 22, 2019"]
    assert all(len(v) == 10 for v in saved["translations"].values())
