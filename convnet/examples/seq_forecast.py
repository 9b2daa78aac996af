"""Sequence to sequence: forecast a chaotic time series one step ahead at every step.

    python -m convnet.examples.seq_forecast [--epochs 5] [--noise 0.02] [--plot fc.png]

The series is Mackey-Glass (tau = 17, sampled every 6 time units; see
:func:`convnet.data.sequences.mackey_glass`) plus Gaussian observation noise of standard
deviation ``--noise`` (fixed seed): a documented, reproducible stand-in for a real series,
nonlinear enough that a linear model of the past values predicts it poorly. The first
``1 - --test-fraction`` of it trains; the held-out tail tests. The model reads windows of
``--window`` values and predicts, at every step, the next value (an LSTM and a dense layer
applied to every output); at test time it reads the whole series, so each forecast uses
all the past, as the baselines do. With ``--tbptt K`` it trains instead by truncated
backpropagation through time: the training part is cut into ``--batch-size`` contiguous
streams read side by side in consecutive chunks of K steps, the LSTM's state carried from
one chunk to the next but cut from the graph (``convnet.nn.utils.detach_state``), so that
gradients flow back at most K steps while the state remembers further. Two baselines, on
the same held-out targets:

- naive: the next value is the last one seen;
- linear autoregression AR(k): least squares on the last k values and a constant, k chosen
  among 1..128 on the last quarter of the training part, then refitted on all of it.

Mean squared errors are on the standardised series (the training part's mean and standard
deviation).
"""

from __future__ import annotations

import argparse

import numpy as np

import convnet as cn
from convnet import nn
from convnet.autograd import no_grad
from convnet.data.sequences import mackey_glass
from convnet.nn.utils import detach_state
from convnet.optim.lr_scheduler import CosineAnnealingLR

from ._seq import (
    Timer,
    add_common_arguments,
    apply_threads,
    batches,
    pyplot,
    train_epoch,
    write_report,
)

AR_ORDERS = (1, 2, 4, 8, 16, 32, 64, 128)


def naive_forecast(series: np.ndarray) -> np.ndarray:
    """Prediction of series[t + 1] for t = 0 .. n-2: series[t]."""
    return np.asarray(series)[:-1].copy()


def lag_matrix(series: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (series[t-k], ..., series[t-1], 1) and targets series[t] for t = k .. n-1."""
    s = np.asarray(series, dtype=np.float64)
    if not 1 <= k < len(s):
        raise ValueError(f"k: need 1 <= k < len(series) = {len(s)}, got {k}")
    windows = np.lib.stride_tricks.sliding_window_view(s[:-1], k)
    return np.hstack([windows, np.ones((len(windows), 1))]), s[k:]


def fit_autoregressive(series: np.ndarray, k: int) -> np.ndarray:
    """Least-squares AR(k) coefficients (k lags, oldest first, then the constant)."""
    a, y = lag_matrix(series, k)
    return np.linalg.lstsq(a, y, rcond=None)[0]


def ar_forecast(series: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """One-step predictions of series[t] for t = k .. n-1 from the k values before each."""
    a, _ = lag_matrix(series, len(coef) - 1)
    return a @ coef


def choose_ar_order(train: np.ndarray, orders=AR_ORDERS) -> tuple[int, dict]:
    """The order with the lowest one-step MSE on the last quarter of ``train`` when fitted
    on the rest (orders too long for the data are skipped)."""
    cut = len(train) * 3 // 4
    scores = {}
    for k in orders:
        if k + 2 > cut:
            continue
        coef = fit_autoregressive(train[:cut], k)
        pred = ar_forecast(train[cut - k:], coef)
        scores[k] = float(np.mean((pred - train[cut:]) ** 2))
    if not scores:
        raise ValueError(f"train: {len(train)} values are too few for an AR model")
    return min(scores, key=scores.get), scores


class Forecaster(nn.Module):
    """(B, T) values -> LSTM -> dense layer at every step -> (B, T) next values."""

    def __init__(self, hidden=64, layers=1, dropout=0.0):
        super().__init__()
        self.rnn = nn.LSTM(1, hidden, num_layers=layers, batch_first=True,
                           dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, state=None):
        return self.step(x, state)[0]

    def step(self, x, state=None):
        """Predictions and the LSTM's final (h, c), from the initial ``state`` if given."""
        b, t = x.shape
        out, state = self.rnn(x.reshape(b, t, 1), state)
        return self.head(out.reshape(b * t, out.shape[2])).reshape(b, t), state


def make_series(length=3000, noise=0.02, seed=0) -> np.ndarray:
    clean = mackey_glass(length)
    return clean + noise * np.random.default_rng(seed).standard_normal(length)


def run(length=3000, noise=0.02, test_fraction=0.2, window=100, hidden=64, layers=1,
        epochs=5, batch_size=32, lr=3e-3, seed=0, tbptt=None, dropout=0.2, progress=True,
        log=print) -> dict:
    raw = make_series(length, noise, seed)
    n_train = int(round(length * (1 - test_fraction)))
    if not window + 1 < n_train < length:
        raise ValueError(f"test_fraction, window: {n_train} training values for windows of "
                         f"{window} and {length - n_train} test values")
    mean, std = raw[:n_train].mean(), raw[:n_train].std()
    z = (raw - mean) / std
    train, target = z[:n_train], z[n_train:]

    naive_mse = float(np.mean((naive_forecast(z[n_train - 1:]) - target) ** 2))
    k, val_scores = choose_ar_order(train)
    coef = fit_autoregressive(train, k)
    ar_pred = ar_forecast(z[n_train - k:], coef)
    ar_mse = float(np.mean((ar_pred - target) ** 2))
    log(f"series: Mackey-Glass, {length} values (noise {noise}), {n_train} train / "
        f"{length - n_train} held out")
    log(f"naive last-value MSE {naive_mse:.4f}; AR({k}) MSE {ar_mse:.4f} "
        f"(order chosen on the training part: {val_scores})")

    windows = np.lib.stride_tricks.sliding_window_view(train, window + 1)
    cn.manual_seed(seed)
    model = Forecaster(hidden, layers, dropout)
    optimizer = cn.optim.Adam(model.parameters(), lr=lr)
    # The learning rate decays to 0 (cosine) so that the last epochs settle instead of
    # jumping about, which Adam at a constant rate does on these regression losses.
    schedule = CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    rng = np.random.default_rng(seed)

    def step_loss(idx):
        w = windows[idx].astype(np.float32)
        pred = model(cn.tensor(w[:, :-1]))
        return cn.functional.mse_loss(pred, cn.tensor(w[:, 1:]))

    if tbptt is not None:
        if not 1 <= tbptt < n_train // batch_size:
            raise ValueError(f"tbptt: need 1 <= tbptt < {n_train // batch_size} (the length "
                             f"of each of the {batch_size} streams), got {tbptt}")
        span = n_train // batch_size
        streams = train[:span * batch_size].reshape(batch_size, span).astype(np.float32)
        chunks = [np.arange(i, min(i + tbptt, span - 1)) for i in range(0, span - 1, tbptt)]
        carried = [None]

        def step_loss(idx):  # noqa: F811 (the truncated-BPTT variant)
            if idx[0] == 0:
                carried[0] = None  # a new pass over the streams starts from a zero state
            pred, state = model.step(cn.tensor(streams[:, idx]), carried[0])
            carried[0] = detach_state(state)
            return cn.functional.mse_loss(pred, cn.tensor(streams[:, idx + 1]))

    def test_mse():
        model.eval()
        with no_grad():
            pred = model(cn.tensor(z[None, :-1].astype(np.float32))).numpy()[0]
        return pred[n_train - 1:], float(np.mean((pred[n_train - 1:] - target) ** 2))

    timer = Timer()
    history = []
    for epoch in range(epochs):
        order = chunks if tbptt else batches(len(windows), batch_size, rng)
        loss = train_epoch(model, optimizer, step_loss, order, progress=progress,
                           desc=f"epoch {epoch + 1}/{epochs}")
        schedule.step()
        _, mse = test_mse()
        history.append({"train_loss": loss, "test_mse": mse})
        log(f"epoch {epoch + 1}/{epochs}  train MSE {loss:.4f}  held-out MSE {mse:.4f}")
    seconds = timer()
    lstm_pred, lstm_mse = test_mse()
    log(f"held-out one-step MSE: LSTM {lstm_mse:.4f}, AR({k}) {ar_mse:.4f}, naive "
        f"{naive_mse:.4f} ({ar_mse / lstm_mse:.1f}x and {naive_mse / lstm_mse:.1f}x lower "
        f"with the LSTM; {seconds:.0f}s of training)")
    return {"example": "seq_forecast", "series": "mackey_glass", "length": length,
            "noise": noise, "train_values": n_train, "test_values": length - n_train,
            "window": None if tbptt else window, "tbptt": tbptt, "hidden": hidden,
            "layers": layers, "epochs": epochs,
            "lstm_mse": lstm_mse, "ar_order": k, "ar_mse": ar_mse, "naive_mse": naive_mse,
            "ar_validation_mse": val_scores, "beats_baselines": lstm_mse < min(ar_mse, naive_mse),
            "train_seconds": seconds, "history": history,
            "_curves": {"truth": target, "lstm": lstm_pred, "ar": ar_pred}}


def plot(out, path, steps=200) -> None:
    plt = pyplot()
    c = out["_curves"]
    t = np.arange(out["train_values"], out["train_values"] + len(c["truth"]))[:steps]
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    axes[0].plot(t, c["truth"][:steps], "k-", lw=1.5, label="truth")
    axes[0].plot(t, c["lstm"][:steps], "-", lw=1, label=f"LSTM (MSE {out['lstm_mse']:.3f})")
    axes[0].plot(t, c["ar"][:steps], "--", lw=1,
                 label=f"AR({out['ar_order']}) (MSE {out['ar_mse']:.3f})")
    axes[0].set_ylabel("standardised value")
    axes[0].set_title("one-step-ahead forecasts on the held-out tail")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].plot(t, np.abs(c["lstm"] - c["truth"])[:steps], label="LSTM")
    axes[1].plot(t, np.abs(c["ar"] - c["truth"])[:steps], "--", label=f"AR({out['ar_order']})")
    axes[1].set_ylabel("absolute error")
    axes[1].set_xlabel("time step")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=3000, help="values in the series")
    parser.add_argument("--noise", type=float, default=0.02, help="observation noise std")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--window", type=int, default=100, help="training window length")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1, help="stacked LSTM layers")
    parser.add_argument("--dropout", type=float, default=0.2,
                        help="dropout between stacked layers (with --layers >= 2)")
    parser.add_argument("--tbptt", type=int, default=None, metavar="K",
                        help="train by truncated BPTT over contiguous streams, K steps a chunk")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    add_common_arguments(parser)
    parser.add_argument("--plot", metavar="FILE.png", help="forecast vs truth")
    args = parser.parse_args(argv)
    apply_threads(args)
    out = run(args.length, args.noise, args.test_fraction, args.window, args.hidden,
              args.layers, args.epochs, args.batch_size, args.lr, args.seed, args.tbptt,
              args.dropout, progress=not args.no_progress)
    if args.report:
        write_report(args.report, {k: v for k, v in out.items() if not k.startswith("_")})
    if args.plot:
        plot(out, args.plot)
        print(f"forecast plot written to {args.plot}")
    return out


if __name__ == "__main__":
    main()
