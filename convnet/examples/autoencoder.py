"""Autoencoders on Fashion-MNIST: stacked dense, tied weights, convolutional, denoising.

    python -m convnet.examples.autoencoder --kind dense|tied|conv|denoising [--epochs 10]
        [--batch-size 128] [--codings 32] [--noise gaussian|dropout] [--data DIR]
        [--device cpu|cuda] [--report FILE.json] [--out FILE.png]

Trains the autoencoder to reproduce its input (mean squared error on pixels in [0, 1])
on every training image, without labels; prints the test reconstruction MSE per epoch;
writes an image of test originals above their reconstructions (for ``denoising``: noisy
input, output, clean target). ``--kind denoising`` wraps the convolutional autoencoder
(``--base dense`` for the dense one) and corrupts the input in training with Gaussian noise
(``--noise-std``) or dropout (``--noise dropout --noise-p``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import convnet as cn
from convnet import functional as F
from convnet.data import FASHION_MNIST_CLASSES, ArrayDataset, DataLoader, load_fashion_mnist
from convnet.models.autoencoder import (
    ConvAutoencoder,
    DenoisingAutoencoder,
    DenseAutoencoder,
)

KINDS = ("dense", "tied", "conv", "denoising")
# Image grids: every cell is CELL inches at DPI, plus a title band above each row, so a
# grid of r rows and c columns is exactly (c * CELL_PX) x (r * (CELL_PX + TITLE_PX)) pixels.
DPI = 100
CELL_PX = 64
TITLE_PX = 20


# --------------------------------------------------------------------------- data


def load_data(data=None, limit=None, seed=0):
    """((x_train, y_train), (x_test, y_test), source): uint8 images (N, 28, 28) and labels;
    ``limit`` keeps that many training and limit // 4 test images (a random stratified-ish
    subset, fixed by ``seed``) for quick runs."""
    sets = load_fashion_mnist(root=data)
    (xtr, ytr), (xte, yte) = sets["train"], sets["test"]
    if limit:
        rng = np.random.default_rng(seed)
        tr = rng.permutation(len(xtr))[:int(limit)]
        te = rng.permutation(len(xte))[:max(int(limit) // 4, 10)]
        xtr, ytr, xte, yte = xtr[tr], ytr[tr], xte[te], yte[te]
    return (xtr, ytr), (xte, yte), sets["source"]


def loader(images, labels, batch_size, shuffle=False, seed=0):
    """Batches of (x, y): x float32 (B, 1, 28, 28) in [0, 1]."""
    return DataLoader(ArrayDataset(images, labels), batch_size=batch_size, shuffle=shuffle,
                      seed=seed)


def _bar(iterable, enabled, desc, total=None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                unit="batch")


# --------------------------------------------------------------------------- training


def reconstruction_loss(model, x):
    return F.mse_loss(model(x), x)


def train(model, train_loader, epochs, *, loss_fn=reconstruction_loss, lr=1e-3,
          device="cpu", progress=True, log=print, evaluate_fn=None, name="train"):
    """Adam on ``loss_fn(model, x)`` over the images of ``train_loader`` (labels unused).
    After each epoch ``evaluate_fn(model)`` (if given) returns a dict of test metrics.
    Returns the history: loss (mean training loss per epoch), epoch_seconds, and the
    evaluation keys."""
    opt = cn.optim.Adam(model.parameters(), lr=lr)
    history: dict[str, list] = {"loss": [], "epoch_seconds": []}
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        total = count = 0.0
        bar = _bar(train_loader, progress, f"{name} {epoch + 1}/{epochs}")
        for x, _ in bar:
            if device != "cpu":
                x = x.to(device)
            loss = loss_fn(model, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            value = float(loss.item())
            total += value * len(x)
            count += len(x)
            if progress:
                bar.set_postfix(loss=f"{value:.4f}")
        seconds = time.perf_counter() - t0
        history["loss"].append(total / count)
        history["epoch_seconds"].append(seconds)
        line = f"{name} epoch {epoch + 1}/{epochs}  loss {total / count:.4f}"
        if evaluate_fn is not None:
            for k, v in evaluate_fn(model).items():
                history.setdefault(k, []).append(v)
                line += f"  {k} {v:.4f}"
        log(f"{line}  {seconds:.1f}s")
    return history


def reconstruction_mse(model, test_loader, device="cpu", corrupt=None):
    """Mean squared error per pixel over a loader, in eval mode; ``corrupt(x)`` (e.g. a
    denoiser's noise) is applied to the input, never to the target."""
    was = model.training
    model.eval()
    se = count = 0.0
    with cn.no_grad():
        for x, _ in test_loader:
            if device != "cpu":
                x = x.to(device)
            out = model(corrupt(x) if corrupt is not None else x)
            d = (out - x).numpy() if device == "cpu" else (out - x).cpu().numpy()
            se += float(np.sum(d.astype(np.float64) ** 2))
            count += d.size
    model.train(was)
    return se / count


# --------------------------------------------------------------------------- pictures


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("pictures need matplotlib (pip install convnet[plot])") from exc
    return plt


def save_image_rows(path, rows, titles=None):
    """One row of images per entry of ``rows`` (each (n, H, W) or (n, 1, H, W), values in
    [0, 1]), with an optional title per row, as a PNG of exactly
    (n * CELL_PX) x (len(rows) * (CELL_PX + TITLE_PX)) pixels."""
    plt = _pyplot()
    rows = [np.asarray(r, np.float64).reshape(len(r), *np.shape(r)[-2:]) for r in rows]
    ncols = max(len(r) for r in rows)
    cell_h = CELL_PX + TITLE_PX
    fig = plt.figure(figsize=(ncols * CELL_PX / DPI, len(rows) * cell_h / DPI), dpi=DPI)
    for i, row in enumerate(rows):
        top = 1 - i / len(rows)
        if titles:
            fig.text(0.005, top - 2 / (len(rows) * cell_h), titles[i], va="top", ha="left",
                     fontsize=9)
        for j, img in enumerate(row):
            ax = fig.add_axes([j / ncols, top - 1 / len(rows), 1 / ncols,
                               CELL_PX / (len(rows) * cell_h)])
            ax.imshow(np.clip(img, 0, 1), cmap="gray_r", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_axis_off()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def one_per_class(labels, n=10):
    """Indices of the first test image of each class (then more, up to n)."""
    first = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)][:n]
    rest = [i for i in range(len(labels)) if i not in first]
    return np.array((first + rest)[:n])


def _device_array(t):
    return t.numpy() if t.device == "cpu" else t.cpu().numpy()


# --------------------------------------------------------------------------- the example


def build(kind, codings=32, noise="gaussian", noise_std=0.3, noise_p=0.3, base="conv"):
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if kind == "dense":
        return DenseAutoencoder(codings=codings)
    if kind == "tied":
        return DenseAutoencoder(codings=codings, tied=True)
    if kind == "conv":
        return ConvAutoencoder(codings=codings)
    inner = ConvAutoencoder(codings=codings) if base == "conv" else \
        DenseAutoencoder(codings=codings)
    return DenoisingAutoencoder(inner, noise=noise, std=noise_std, p=noise_p)


def run(kind="conv", epochs=5, batch_size=128, lr=1e-3, codings=32, noise="gaussian",
        noise_std=0.3, noise_p=0.3, base="conv", data=None, device="cpu", out=None,
        limit=None, seed=0, progress=True, log=print) -> dict:
    cn.manual_seed(seed)
    (xtr, ytr), (xte, yte), source = load_data(data, limit, seed)
    log(f"{source}: {len(xtr)} training images (labels unused), {len(xte)} test images")
    model = build(kind, codings, noise, noise_std, noise_p, base)
    if device != "cpu":
        model.to(device)
    train_loader = loader(xtr, ytr, batch_size, shuffle=True, seed=seed)
    test_loader = loader(xte, yte, 500)
    corrupt = model.corrupt if kind == "denoising" else None

    def metrics(m):
        out = {"test_mse": reconstruction_mse(m, test_loader, device)}
        if corrupt is not None:
            out["test_mse_noisy_input"] = reconstruction_mse(m, test_loader, device, corrupt)
        return out

    t0 = time.perf_counter()
    history = train(model, train_loader, epochs, lr=lr, device=device, progress=progress,
                    log=log, evaluate_fn=metrics, name=kind)
    result = {"kind": kind, "epochs": epochs, "batch_size": batch_size, "codings": codings,
              "parameters": sum(p.numel() for p in model.parameters()),
              "train_images": len(xtr), "test_images": len(xte), "source": source,
              "device": device, "backend": cn.kernels._registry.default_cpu()
              if device == "cpu" else "cuda", "seconds": time.perf_counter() - t0,
              "test_mse": history["test_mse"][-1] if epochs else
              reconstruction_mse(model, test_loader, device), "history": history}
    if kind == "denoising":
        result["noise"] = {"kind": noise, "std": noise_std, "p": noise_p}
        result["test_mse_noisy_input"] = history["test_mse_noisy_input"][-1] if epochs \
            else reconstruction_mse(model, test_loader, device, corrupt)
    log(f"{kind} autoencoder: test reconstruction MSE {result['test_mse']:.5f}"
        + (f" (from noisy input: {result['test_mse_noisy_input']:.5f})"
           if kind == "denoising" else "")
        + f", {result['parameters']:,} parameters, {result['seconds']:.0f}s")
    if out:
        pick = one_per_class(yte)
        x = cn.tensor(xte[pick, None].astype(np.float32) / 255)
        if device != "cpu":
            x = x.to(device)
        model.eval()
        with cn.no_grad():
            if kind == "denoising":
                noisy = model.corrupt(x)
                rows = [_device_array(noisy), _device_array(model(noisy)), _device_array(x)]
                titles = [f"noisy input ({noise})", "output", "clean target"]
            else:
                rows = [_device_array(x), _device_array(model(x))]
                titles = ["original", "reconstruction"]
        save_image_rows(out, rows, titles)
        result["image"] = str(out)
        log(f"wrote {out} ({', '.join(FASHION_MNIST_CLASSES[int(c)] for c in yte[pick])})")
    return result


def add_common_arguments(parser, epochs, batch_size, out_flag="--out"):
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data", default=None, help="Fashion-MNIST folder (default: search)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only this many training images (quick runs)")
    parser.add_argument("--report", metavar="FILE.json")
    parser.add_argument("--no-progress", action="store_true")


def write_report(path, result):
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=KINDS, default="conv")
    add_common_arguments(parser, epochs=10, batch_size=128)
    parser.add_argument("--codings", type=int, default=32)
    parser.add_argument("--noise", choices=["gaussian", "dropout"], default="gaussian")
    parser.add_argument("--noise-std", type=float, default=0.3)
    parser.add_argument("--noise-p", type=float, default=0.3)
    parser.add_argument("--base", choices=["conv", "dense"], default="conv",
                        help="the autoencoder a denoising one wraps")
    parser.add_argument("--out", "--samples", dest="out", metavar="FILE.png",
                        default="autoencoder.png")
    args = parser.parse_args(argv)
    result = run(args.kind, args.epochs, args.batch_size, args.lr, args.codings, args.noise,
                 args.noise_std, args.noise_p, args.base, args.data, args.device, args.out,
                 args.limit, args.seed, progress=not args.no_progress)
    write_report(args.report, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
