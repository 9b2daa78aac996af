"""Vector to sequence: generate a waveform from its parameters.

    python -m convnet.examples.seq_generate [--epochs 15] [--plot gen.png]

Each sample is one vector (frequency, phase, amplitude) and the sequence
``amplitude * sin(2 pi frequency t + phase)`` over ``--length`` steps of 0.05 s
(:func:`convnet.data.sequences.waveforms`); frequencies 0.5-2 Hz, phases 0-2 pi,
amplitudes 0.5-1.5. The vector, encoded as (frequency, sin phase, cos phase, amplitude)
so that phases 0 and 2 pi look alike, is fed to an LSTM at every step (the network sees
the same input throughout and must produce the sequence from its state); a dense layer
reads each step's output. Parameter vectors for training and for testing are drawn
separately; the report gives the mean squared error on the held-out ones next to the
error of predicting the mean training waveform.
"""

from __future__ import annotations

import argparse

import numpy as np

import convnet as cn
from convnet import nn
from convnet.autograd import no_grad
from convnet.data.sequences import waveforms
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

RANGES = {"frequency": (0.5, 2.0), "phase": (0.0, 2 * np.pi), "amplitude": (0.5, 1.5)}


def draw_params(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) rows of (frequency, phase, amplitude), uniform in :data:`RANGES`."""
    return np.stack([rng.uniform(*RANGES[k], size=n) for k in RANGES], axis=1)


def encode(params: np.ndarray) -> np.ndarray:
    """(N, 3) parameters -> (N, 4) network inputs, each feature in about [-1, 1]."""
    f, phase, a = params.T
    (f0, f1), (a0, a1) = RANGES["frequency"], RANGES["amplitude"]
    return np.stack([2 * (f - f0) / (f1 - f0) - 1, np.sin(phase), np.cos(phase),
                     2 * (a - a0) / (a1 - a0) - 1], axis=1).astype(np.float32)


class Generator(nn.Module):
    """(B, 4) vectors -> the vector repeated over ``length`` steps -> LSTM -> dense layer
    at every step -> (B, length)."""

    def __init__(self, length, features=4, hidden=64, layers=1, dropout=0.0):
        super().__init__()
        self.length, self.features = length, features
        self.rnn = nn.LSTM(features, hidden, num_layers=layers, batch_first=True,
                           dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, 1)

    def forward(self, v):
        b = v.shape[0]
        steps = v.reshape(b, 1, self.features) * cn.ones(1, self.length, 1)
        out, _ = self.rnn(steps)
        return self.head(out.reshape(b * self.length, out.shape[2])).reshape(b, self.length)


def run(n_train=4000, n_test=500, length=50, hidden=64, layers=1, epochs=15, batch_size=32,
        lr=3e-3, seed=0, progress=True, log=print) -> dict:
    rng = np.random.default_rng(seed)
    p_train, p_test = draw_params(n_train, rng), draw_params(n_test, rng)
    x_train, x_test = encode(p_train), encode(p_test)
    y_train = waveforms(p_train, length).astype(np.float32)
    y_test = waveforms(p_test, length).astype(np.float32)
    mean_wave = y_train.mean(axis=0)
    baseline_mse = float(np.mean((y_test - mean_wave) ** 2))

    cn.manual_seed(seed)
    model = Generator(length, hidden=hidden, layers=layers)
    optimizer = cn.optim.Adam(model.parameters(), lr=lr)
    # The learning rate decays to 0 (cosine) so that the last epochs settle instead of
    # jumping about, which Adam at a constant rate does on these regression losses.
    schedule = CosineAnnealingLR(optimizer, T_max=max(epochs, 1))

    def step_loss(idx):
        return cn.functional.mse_loss(model(cn.tensor(x_train[idx])), cn.tensor(y_train[idx]))

    def predict(x):
        model.eval()
        with no_grad():
            return model(cn.tensor(x)).numpy()

    log(f"{n_train} training and {n_test} held-out parameter vectors, sequences of "
        f"{length} steps; predicting the mean training waveform: MSE {baseline_mse:.4f}")
    timer = Timer()
    history = []
    for epoch in range(epochs):
        loss = train_epoch(model, optimizer, step_loss, batches(n_train, batch_size, rng),
                           progress=progress, desc=f"epoch {epoch + 1}/{epochs}")
        schedule.step()
        mse = float(np.mean((predict(x_test) - y_test) ** 2))
        history.append({"train_loss": loss, "test_mse": mse})
        log(f"epoch {epoch + 1}/{epochs}  train MSE {loss:.5f}  held-out MSE {mse:.5f}")
    seconds = timer()
    pred = predict(x_test)
    mse = float(np.mean((pred - y_test) ** 2))
    worst = float(np.abs(pred - y_test).max())
    log(f"held-out MSE {mse:.5f} ({baseline_mse / mse:.0f}x below the mean-waveform "
        f"baseline; mean signal power {float(np.mean(y_test ** 2)):.3f}, largest error "
        f"{worst:.3f}); {seconds:.0f}s of training")
    return {"example": "seq_generate", "n_train": n_train, "n_test": n_test,
            "length": length, "hidden": hidden, "layers": layers, "epochs": epochs,
            "test_mse": mse, "baseline_mse": baseline_mse, "max_abs_error": worst,
            "train_seconds": seconds, "history": history,
            "_curves": {"params": p_test, "truth": y_test, "pred": pred}}


def plot(out, path, count=6) -> None:
    plt = pyplot()
    c = out["_curves"]
    t = np.arange(out["length"]) * 0.05
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.5), sharex=True, sharey=True)
    for ax, i in zip(axes.flat, range(count)):
        f, phase, a = c["params"][i]
        ax.plot(t, c["truth"][i], "k-", lw=1.5, label="true")
        ax.plot(t, c["pred"][i], "o", ms=2.5, label="generated")
        ax.set_title(f"f={f:.2f} Hz, phase={phase:.2f}, A={a:.2f}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("t (s)")
    fig.suptitle(f"held-out parameter vectors (test MSE {out['test_mse']:.4f})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=4000, help="training parameter vectors")
    parser.add_argument("--test", type=int, default=500, help="held-out parameter vectors")
    parser.add_argument("--length", type=int, default=50, help="steps per sequence")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    add_common_arguments(parser)
    parser.add_argument("--plot", metavar="FILE.png", help="generated vs true waveforms")
    args = parser.parse_args(argv)
    apply_threads(args)
    out = run(args.train, args.test, args.length, args.hidden, args.layers, args.epochs,
              args.batch_size, args.lr, args.seed, progress=not args.no_progress)
    if args.report:
        write_report(args.report, {k: v for k, v in out.items() if not k.startswith("_")})
    if args.plot:
        plot(out, args.plot)
        print(f"waveform plot written to {args.plot}")
    return out


if __name__ == "__main__":
    main()
