"""Sequence data generated from documented formulas, for the recurrent-network examples
(nothing is downloaded; every series is reproducible from its arguments).

- :func:`mackey_glass`: the Mackey-Glass delay differential equation (Mackey & Glass,
  "Oscillation and chaos in physiological control systems", Science 197, 1977), a chaotic
  series and a standard forecasting benchmark;
- :func:`waveforms`: sinusoids from (frequency, phase, amplitude) parameter vectors;
- :func:`human_date` and :func:`date_pairs`: dates written the way people write them
  ("April 22, 2019", "22/04/2019", "the 22nd of April, 2019", ...) with their ISO form.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

__all__ = ["mackey_glass", "waveforms", "DATE_FORMATS", "human_date", "date_pairs",
           "date_range"]


def mackey_glass(n: int, tau: float = 17.0, beta: float = 0.2, gamma: float = 0.1,
                 power: float = 10.0, dt: float = 0.1, sample_every: float = 6.0,
                 x0: float = 1.2, discard: int = 200) -> np.ndarray:
    """``n`` samples of the Mackey-Glass series, float64.

    dx/dt = beta * x(t - tau) / (1 + x(t - tau)**power) - gamma * x(t), integrated with
    Euler steps of ``dt`` from the constant history x = ``x0``, then sampled every
    ``sample_every`` time units after dropping the first ``discard`` samples (the
    transient). tau = 17 makes it chaotic. Sampled every 6 units (a common choice), one
    step ahead is far enough for the dynamics to be nonlinear: a linear autoregression on
    the past values predicts it poorly.
    """
    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    if dt <= 0 or sample_every < dt:
        raise ValueError(f"dt, sample_every: need 0 < dt <= sample_every, got {dt}, "
                         f"{sample_every}")
    lag = int(round(tau / dt))
    stride = int(round(sample_every / dt))
    steps = (n + discard) * stride
    x = np.empty(lag + steps + 1)
    x[:lag + 1] = x0
    for i in range(lag, lag + steps):
        delayed = x[i - lag]
        x[i + 1] = x[i] + dt * (beta * delayed / (1.0 + delayed ** power) - gamma * x[i])
    return x[lag + stride::stride][discard:discard + n].copy()


def waveforms(params, length: int, dt: float = 0.05) -> np.ndarray:
    """Sinusoids ``amplitude * sin(2 pi frequency t + phase)`` at t = 0, dt, 2 dt, ...:
    ``params`` (N, 3) holds (frequency, phase, amplitude) rows; returns (N, length)."""
    params = np.asarray(params, dtype=np.float64)
    if params.ndim != 2 or params.shape[1] != 3:
        raise ValueError(f"params: expected (N, 3) rows of (frequency, phase, amplitude), "
                         f"got shape {params.shape}")
    t = np.arange(length) * dt
    freq, phase, amp = params[:, :1], params[:, 1:2], params[:, 2:3]
    return amp * np.sin(2 * np.pi * freq * t + phase)


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(d: int) -> str:
    suffix = "th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return f"{d}{suffix}"


# Day-first numeric forms only ("22/04/2019"): with month-first ones too, "03/04/2019"
# would have two answers.
DATE_FORMATS = {
    "long": lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",               # April 22, 2019
    "dmy_slash": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}",                # 22/04/2019
    "short": lambda d: f"{_MONTHS[d.month - 1][:3]} {d.day} {d.year}",           # Apr 22 2019
    "day_month": lambda d: f"{d.day} {_MONTHS[d.month - 1]} {d.year}",           # 22 April 2019
    "ymd_dot": lambda d: f"{d.year}.{d.month:02d}.{d.day:02d}",                  # 2019.04.22
    "weekday": lambda d: f"{_DAYS[d.weekday()]}, {_MONTHS[d.month - 1]} {d.day}, {d.year}",
    "dmy_dash": lambda d: f"{d.day:02d}-{_MONTHS[d.month - 1][:3]}-{d.year}",    # 22-Apr-2019
    "ordinal": lambda d: f"the {_ordinal(d.day)} of {_MONTHS[d.month - 1]}, {d.year}",
    "upper": lambda d: f"{_MONTHS[d.month - 1].upper()} {d.day}, {d.year}",      # APRIL 22, 2019
    "dmy_dot": lambda d: f"{d.day}.{d.month}.{d.year}",                          # 22.4.2019
    "iso": lambda d: d.isoformat(),                                              # 2019-04-22
}


def human_date(date: _dt.date, style: str) -> str:
    """``date`` written in one of :data:`DATE_FORMATS`' styles."""
    try:
        return DATE_FORMATS[style](date)
    except KeyError:
        raise ValueError(f"style: expected one of {sorted(DATE_FORMATS)}, got "
                         f"{style!r}") from None


def date_range(start: str = "1950-01-01", end: str = "2049-12-31") -> list[_dt.date]:
    """Every date from ``start`` to ``end`` inclusive (ISO strings)."""
    first, last = _dt.date.fromisoformat(start), _dt.date.fromisoformat(end)
    if last < first:
        raise ValueError(f"end: {end} is before start {start}")
    return [first + _dt.timedelta(days=i) for i in range((last - first).days + 1)]


def date_pairs(dates, rng: np.random.Generator, styles=None) -> list[tuple[str, str]]:
    """(human-written, ISO) pairs, one per date, each in a style drawn at random."""
    styles = list(DATE_FORMATS) if styles is None else list(styles)
    for s in styles:
        if s not in DATE_FORMATS:
            raise ValueError(f"styles: unknown style {s!r} (known: {sorted(DATE_FORMATS)})")
    picks = rng.integers(0, len(styles), size=len(dates))
    return [(human_date(d, styles[k]), d.isoformat()) for d, k in zip(dates, picks)]
