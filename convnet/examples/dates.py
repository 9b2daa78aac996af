"""Encoder-decoder: translate human-written dates into ISO format.

    python -m convnet.examples.dates [--layers 2 --dropout 0.2] [--translate "Sep 3 1999" ...]

"April 22, 2019", "22/04/2019", "Apr 22 2019", "Monday, April 22, 2019", "the 22nd of
April, 2019", ... -> "2019-04-22" (the styles: :data:`convnet.data.sequences.DATE_FORMATS`),
for dates from 1950 to 2049. ``--test`` dates are held out: no training pair is written
from them. Training pairs are drawn afresh for every batch (a random training date in a
random style).

Characters go in one-hot (convnet has no embedding layer; a one-hot vector times the first
weight matrix is one). The encoder, an LSTM, reads the left-padded input (padding first,
so that its final state follows the last character); its final (h, c) becomes the initial
state of the decoder, another LSTM, that writes the 10 output characters. Training uses
teacher forcing (the decoder reads the true previous character, the first step a start
symbol); inference decodes greedily, feeding back the most likely character. The score is
the exact-match accuracy on the held-out dates, each written in a random style.
"""

from __future__ import annotations

import argparse
import datetime as _dt

import numpy as np

import convnet as cn
from convnet import nn
from convnet.autograd import no_grad
from convnet.data.sequences import DATE_FORMATS, date_pairs, date_range
from convnet.optim.lr_scheduler import CosineAnnealingLR

from ._seq import Timer, add_common_arguments, apply_threads, train_epoch, write_report

OUTPUT_CHARS = "0123456789-"
TARGET_LENGTH = 10  # "YYYY-MM-DD"


def _sample_dates():
    # Every month, every weekday, every day number and both centuries: all the characters
    # and the longest strings any style writes.
    days = [_dt.date(2019, m, d) for m in range(1, 13) for d in (1, 2, 3, 22, 28)]
    days += [_dt.date(1950, 1, 1) + _dt.timedelta(days=i) for i in range(40)]
    days += [_dt.date(2049, 9, 24) + _dt.timedelta(days=i) for i in range(7)]
    return days


class Vocab:
    """Input characters (index 0 is padding) and the output alphabet (digits and '-',
    plus a start symbol for the decoder's first input)."""

    def __init__(self):
        texts = [f(d) for d in _sample_dates() for f in DATE_FORMATS.values()]
        self.chars = sorted(set("".join(texts)))
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}
        self.size = len(self.chars) + 1
        self.max_length = max(len(t) for t in texts)
        self.out_index = {c: i for i, c in enumerate(OUTPUT_CHARS)}
        self.start = len(OUTPUT_CHARS)

    def encode_inputs(self, texts) -> np.ndarray:
        """(B, max_length, size) one-hot, left-padded with the padding symbol."""
        x = np.zeros((len(texts), self.max_length, self.size), np.float32)
        for b, s in enumerate(texts):
            if len(s) > self.max_length:
                raise ValueError(f"texts: {s!r} is longer than {self.max_length} characters")
            pad = self.max_length - len(s)
            x[b, :pad, 0] = 1.0
            try:
                x[b, np.arange(pad, self.max_length), [self.index[c] for c in s]] = 1.0
            except KeyError as exc:
                raise ValueError(f"texts: {s!r} has a character outside the vocabulary: "
                                 f"{exc}") from None
        return x

    def encode_targets(self, isos) -> np.ndarray:
        """(B, 10) output indices."""
        return np.array([[self.out_index[c] for c in s] for s in isos], np.int64)

    def decoder_inputs(self, targets: np.ndarray) -> np.ndarray:
        """Teacher forcing: (B, 10, 12) one-hot of the start symbol then targets[:, :-1]."""
        b, t = targets.shape
        x = np.zeros((b, t, len(OUTPUT_CHARS) + 1), np.float32)
        x[:, 0, self.start] = 1.0
        x[np.arange(b)[:, None], np.arange(1, t)[None], targets[:, :-1]] = 1.0
        return x

    def decode(self, indices) -> list[str]:
        return ["".join(OUTPUT_CHARS[i] for i in row) for row in indices]


class DateTranslator(nn.Module):
    def __init__(self, vocab_size, hidden=128, layers=1, dropout=0.0):
        super().__init__()
        drop = dropout if layers > 1 else 0.0
        self.out_size = len(OUTPUT_CHARS)
        self.encoder = nn.LSTM(vocab_size, hidden, num_layers=layers, batch_first=True,
                               dropout=drop)
        self.decoder = nn.LSTM(self.out_size + 1, hidden, num_layers=layers, batch_first=True,
                               dropout=drop)
        self.head = nn.Linear(hidden, self.out_size)

    def forward(self, x, y_in):
        """Teacher-forced logits (B, T, 11) for inputs x (B, L, V), decoder inputs y_in."""
        _, state = self.encoder(x)
        out, _ = self.decoder(y_in, state)
        b, t, h = out.shape
        return self.head(out.reshape(b * t, h)).reshape(b, t, self.out_size)

    def greedy(self, x, steps=TARGET_LENGTH) -> np.ndarray:
        """(B, steps) indices, each step fed the previous step's most likely character."""
        b = x.shape[0]
        _, state = self.encoder(x)
        inp = np.zeros((b, 1, self.out_size + 1), np.float32)
        inp[:, 0, self.out_size] = 1.0
        result = np.empty((b, steps), np.int64)
        for t in range(steps):
            out, state = self.decoder(cn.tensor(inp), state)
            k = self.head(out.reshape(b, out.shape[2])).numpy().argmax(axis=1)
            result[:, t] = k
            inp = np.zeros_like(inp)
            inp[np.arange(b), 0, k] = 1.0
        return result


def split_dates(n_test: int, seed: int, start="1950-01-01", end="2049-12-31"):
    """(training dates, held-out dates in random order): a random ``n_test`` of the days in
    the range are held out."""
    days = date_range(start, end)
    if not 0 < n_test < len(days):
        raise ValueError(f"n_test: need 0 < n_test < {len(days)}, got {n_test}")
    order = np.random.default_rng(seed).permutation(len(days))
    return [days[i] for i in np.sort(order[n_test:])], [days[i] for i in order[:n_test]]


def translate(model, vocab, texts, batch=500) -> list[str]:
    model.eval()
    out = []
    with no_grad():
        for i in range(0, len(texts), batch):
            x = cn.tensor(vocab.encode_inputs(texts[i:i + batch]))
            out += vocab.decode(model.greedy(x))
    return out


def run(hidden=128, layers=1, dropout=0.2, epochs=6, steps_per_epoch=500, batch_size=64,
        lr=3e-3, n_test=2000, seed=0, samples=12, translate_texts=(), progress=True,
        log=print) -> dict:
    vocab = Vocab()
    train_dates, test_dates = split_dates(n_test, seed)
    rng = np.random.default_rng(seed)
    test_pairs = date_pairs(test_dates, np.random.default_rng(seed + 1))
    test_texts = [a for a, _ in test_pairs]
    test_isos = [b for _, b in test_pairs]

    cn.manual_seed(seed)
    model = DateTranslator(vocab.size, hidden, layers, dropout)
    optimizer = cn.optim.Adam(model.parameters(), lr=lr)
    schedule = CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    log(f"{len(train_dates)} training dates, {len(test_dates)} held out; {vocab.size} input "
        f"symbols, inputs up to {vocab.max_length} characters; model: encoder "
        f"{model.encoder}, decoder {model.decoder}")

    def step_loss(idx):
        pairs = date_pairs([train_dates[i] for i in idx], rng)
        targets = vocab.encode_targets([b for _, b in pairs])
        logits = model(cn.tensor(vocab.encode_inputs([a for a, _ in pairs])),
                       cn.tensor(vocab.decoder_inputs(targets)))
        return cn.functional.cross_entropy(logits.reshape(-1, len(OUTPUT_CHARS)),
                                           cn.tensor(targets.reshape(-1)))

    def accuracy():
        pred = translate(model, vocab, test_texts)
        return float(np.mean([p == t for p, t in zip(pred, test_isos)])), pred

    timer = Timer()
    history = []
    for epoch in range(epochs):
        idx = [rng.integers(0, len(train_dates), batch_size) for _ in range(steps_per_epoch)]
        loss = train_epoch(model, optimizer, step_loss, idx, progress=progress,
                           desc=f"epoch {epoch + 1}/{epochs}")
        schedule.step()
        acc, _ = accuracy()
        history.append({"train_loss": loss, "test_exact_match": acc})
        log(f"epoch {epoch + 1}/{epochs}  loss {loss:.4f}  held-out exact match {acc:.4f}")
    seconds = timer()
    acc, pred = accuracy()
    log(f"held-out exact-match accuracy {acc:.4f} ({len(test_texts)} dates never seen in "
        f"training; {seconds:.0f}s of training)")
    log("sample translations:")
    for text, p, t in list(zip(test_texts, pred, test_isos))[:samples]:
        log(f"  {text:<32} -> {p}{'' if p == t else f'   WRONG (expected {t})'}")
    errors = [(a, p, t) for a, p, t in zip(test_texts, pred, test_isos) if p != t]
    if errors:
        log(f"{len(errors)} errors, e.g. " + "; ".join(f"{a!r} -> {p} (not {t})"
                                                      for a, p, t in errors[:5]))
    translations = {}
    if translate_texts:
        translations = dict(zip(translate_texts, translate(model, vocab, list(translate_texts))))
        log("your dates:")
        for text, iso in translations.items():
            log(f"  {text:<32} -> {iso}")
    return {"example": "dates", "hidden": hidden, "layers": layers,
            "dropout": dropout if layers > 1 else 0.0, "epochs": epochs,
            "steps": epochs * steps_per_epoch, "batch_size": batch_size,
            "train_dates": len(train_dates), "test_dates": len(test_dates),
            "test_exact_match": acc, "train_seconds": seconds, "history": history,
            "translations": translations,
            "errors": [{"input": a, "output": p, "expected": t} for a, p, t in errors[:50]]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1, help="stacked LSTM layers, each side")
    parser.add_argument("--dropout", type=float, default=0.2,
                        help="dropout between stacked layers (with --layers >= 2)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps-per-epoch", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--test", type=int, default=2000, help="held-out dates")
    parser.add_argument("--translate", nargs="+", default=(), metavar="TEXT",
                        help="dates of yours to translate after training")
    add_common_arguments(parser)
    parser.add_argument("--plot", metavar="FILE.png", help="loss and accuracy per epoch")
    args = parser.parse_args(argv)
    apply_threads(args)
    out = run(args.hidden, args.layers, args.dropout, args.epochs, args.steps_per_epoch,
              args.batch_size, args.lr, args.test, args.seed,
              translate_texts=args.translate, progress=not args.no_progress)
    if args.report:
        write_report(args.report, out)
    if args.plot:
        from ._seq import pyplot

        plt = pyplot()
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        epochs = np.arange(1, len(out["history"]) + 1)
        ax[0].plot(epochs, [h["train_loss"] for h in out["history"]], "o-")
        ax[0].set_title("training loss (teacher forcing)")
        ax[1].plot(epochs, [h["test_exact_match"] for h in out["history"]], "o-")
        ax[1].set_title("held-out exact match (greedy)")
        for a in ax:
            a.set_xlabel("epoch")
            a.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        plt.close(fig)
        print(f"learning curves written to {args.plot}")
    return out


if __name__ == "__main__":
    main()
