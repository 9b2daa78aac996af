import datetime as dt
import re

import numpy as np
import pytest

from convnet.data.sequences import (
    DATE_FORMATS,
    date_pairs,
    date_range,
    human_date,
    mackey_glass,
    waveforms,
)


def test_mackey_glass_follows_the_equation_step_by_step():
    # While the delayed value still lies in the constant history x0, each Euler step is
    # x + dt * (beta * x0 / (1 + x0**10) - gamma * x).
    x0, dt_, beta, gamma = 1.2, 0.1, 0.2, 0.1
    got = mackey_glass(5, dt=dt_, sample_every=dt_, discard=0, x0=x0)
    x, want = x0, []
    for _ in range(5):
        x = x + dt_ * (beta * x0 / (1 + x0 ** 10) - gamma * x)
        want.append(x)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_mackey_glass_default_series_oscillates_within_its_known_range():
    s = mackey_glass(1000)
    assert s.shape == (1000,) and np.isfinite(s).all()
    assert 0.2 < s.min() and s.max() < 1.5 and s.std() > 0.15
    np.testing.assert_array_equal(s, mackey_glass(1000))
    with pytest.raises(ValueError, match="n"):
        mackey_glass(0)


def test_waveforms_match_the_formula():
    params = np.array([[1.0, 0.0, 2.0], [0.5, np.pi / 2, 1.0]])
    w = waveforms(params, 11, dt=0.05)
    t = np.arange(11) * 0.05
    np.testing.assert_allclose(w[0], 2 * np.sin(2 * np.pi * t), atol=1e-12)
    np.testing.assert_allclose(w[1], np.cos(np.pi * t), atol=1e-12)
    with pytest.raises(ValueError, match="params"):
        waveforms(np.zeros((3, 2)), 5)


def test_human_date_styles():
    d = dt.date(2019, 4, 22)
    want = {"long": "April 22, 2019", "dmy_slash": "22/04/2019", "short": "Apr 22 2019",
            "day_month": "22 April 2019", "ymd_dot": "2019.04.22",
            "weekday": "Monday, April 22, 2019", "dmy_dash": "22-Apr-2019",
            "ordinal": "the 22nd of April, 2019", "upper": "APRIL 22, 2019",
            "dmy_dot": "22.4.2019", "iso": "2019-04-22"}
    assert {s: human_date(d, s) for s in DATE_FORMATS} == want
    ordinals = [human_date(dt.date(2020, 1, k), "ordinal").split()[1]
                for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)]
    assert ordinals == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd",
                        "23rd", "31st"]
    with pytest.raises(ValueError, match="style"):
        human_date(d, "klingon")


# An independent reading of every style with the standard library's parser.
_STRPTIME = ["%B %d, %Y", "%d/%m/%Y", "%b %d %Y", "%d %B %Y", "%Y.%m.%d", "%A, %B %d, %Y",
             "%d-%b-%Y", "the %d of %B, %Y", "%d.%m.%Y", "%Y-%m-%d"]


def _parse(text):
    text = re.sub(r"(\d+)(st|nd|rd|th) of", r"\1 of", text)
    found = set()
    for fmt in _STRPTIME:
        try:
            found.add(dt.datetime.strptime(text, fmt).date())
        except ValueError:
            pass
    return found


def test_date_pairs_parse_back_to_their_iso_target():
    days = date_range("1950-01-01", "2049-12-31")
    assert len(days) == (dt.date(2049, 12, 31) - dt.date(1950, 1, 1)).days + 1
    rng = np.random.default_rng(0)
    picked = [days[i] for i in rng.integers(0, len(days), 3000)]
    pairs = date_pairs(picked, rng)
    styles_seen = set()
    for (text, iso), day in zip(pairs, picked):
        assert iso == day.isoformat()
        assert _parse(text) == {day}, text  # readable, and only as the right date
        if "," in text and not text[0].isdigit() and text.split(",")[0].isalpha():
            assert text.split(",")[0] == day.strftime("%A")
        styles_seen |= {s for s in DATE_FORMATS if human_date(day, s) == text}
    assert styles_seen == set(DATE_FORMATS)
    with pytest.raises(ValueError, match="styles"):
        date_pairs(picked[:2], rng, styles=["nope"])
