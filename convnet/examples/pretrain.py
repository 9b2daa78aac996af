"""Unsupervised pretraining (the course's use of autoencoders when labels are scarce).

    python -m convnet.examples.pretrain [--ae-epochs 5] [--labelled 500] [--epochs 30]
        [--data DIR] [--device cpu|cuda] [--report FILE.json] [--plot FILE.png]

1. Train a convolutional autoencoder on every training image, without labels; by default
   a denoising one (Gaussian noise of std 0.3 on its input), whose encoder transferred
   slightly better here than a plain autoencoder's (``--pretrain plain``).
2. Put a classifier head (ReLU, dropout, a dense softmax layer) on its encoder and train it
   on only ``--labelled`` labelled images (a random subset), twice: with the encoder
   fine-tuned from the pretrained weights, and with the pretrained encoder frozen (only
   the head learns).
3. Train the same classifier from scratch on the same images for the same epochs.
4. Print the three test accuracies (on the whole test set), and plot them per epoch with
   ``--plot``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import convnet as cn
from convnet import nn
from convnet.examples.autoencoder import (
    _pyplot,
    add_common_arguments,
    load_data,
    loader,
    reconstruction_mse,
    train,
    write_report,
)
from convnet.models.autoencoder import ConvAutoencoder, DenoisingAutoencoder
from convnet.train import evaluate, fit

VARIANTS = ("pretrained", "pretrained_frozen", "scratch")


def classifier(encoder: nn.Module, codings: int, num_classes=10, dropout=0.3) -> nn.Module:
    """The encoder under a small head: codings -> ReLU -> Dropout -> Linear (logits)."""
    return nn.Sequential(encoder, nn.ReLU(), nn.Dropout(dropout), nn.Linear(codings,
                                                                            num_classes))


def labelled_subset(labels, count, seed):
    """``count`` indices drawn at random (fixed by ``seed``); every class appears when
    count >= 10 (the first ten picks cover the classes, the rest are uniform)."""
    rng = np.random.default_rng(seed)
    first = [int(rng.choice(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    rest = rng.permutation(np.setdiff1d(np.arange(len(labels)), first))
    return np.concatenate([first, rest])[:count]


def run(ae_epochs=5, labelled=500, epochs=30, batch_size=128, lr=1e-3, codings=64, data=None,
        device="cpu", limit=None, seed=0, progress=True, log=print, pretrain="denoising",
        noise_std=0.3) -> dict:
    if pretrain not in ("denoising", "plain"):
        raise ValueError(f"pretrain: expected 'denoising' or 'plain', got {pretrain!r}")
    cn.manual_seed(seed)
    (xtr, ytr), (xte, yte), source = load_data(data, limit, seed)
    log(f"{source}: {len(xtr)} training images, {labelled} of them with labels; "
        f"{len(xte)} test images")
    test_loader = loader(xte, yte, 500)

    t0 = time.perf_counter()
    ae = ConvAutoencoder(codings=codings)
    trained = DenoisingAutoencoder(ae, std=noise_std) if pretrain == "denoising" else ae
    if device != "cpu":
        trained.to(device)
    train(trained, loader(xtr, ytr, batch_size, shuffle=True, seed=seed), ae_epochs, lr=lr,
          device=device, progress=progress, log=log, name=f"{pretrain} autoencoder")
    ae_mse = reconstruction_mse(ae, test_loader, device)
    ae_seconds = time.perf_counter() - t0
    log(f"{pretrain} autoencoder pretrained on {len(xtr)} unlabelled images: test "
        f"reconstruction MSE {ae_mse:.5f} "
        f"({ae_seconds:.0f}s)")

    pick = labelled_subset(ytr, labelled, seed)
    small = loader(xtr[pick], ytr[pick], 32, shuffle=True, seed=seed)
    results = {}
    for name in VARIANTS:
        cn.manual_seed(seed + 1)  # the same head (and scratch encoder) initialisation
        encoder = ConvAutoencoder(codings=codings).encoder
        if name.startswith("pretrained"):
            encoder.load_state_dict(ae.encoder.state_dict())
        if name == "pretrained_frozen":
            encoder.requires_grad_(False)
        model = classifier(encoder, codings)
        if device != "cpu":
            model.to(device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        t1 = time.perf_counter()
        history = fit(model, small, test_loader, epochs=epochs,
                      optimizer=cn.optim.Adam(trainable, lr=lr), progress=progress,
                      log=lambda s: None, device=None if device == "cpu" else device)
        acc = evaluate(model, test_loader, device=None if device == "cpu" else device)[1]
        results[name] = {"test_accuracy": acc,
                         "test_accuracy_per_epoch": history["val_accuracy"],
                         "trainable_parameters": sum(p.numel() for p in trainable),
                         "seconds": time.perf_counter() - t1}
        log(f"{name:<18} test accuracy {acc:.4f} after {epochs} epochs on {labelled} "
            f"labelled images ({results[name]['trainable_parameters']:,} trainable "
            f"parameters, {results[name]['seconds']:.0f}s)")
    gain = results["pretrained"]["test_accuracy"] - results["scratch"]["test_accuracy"]
    log(f"pretraining on unlabelled images: {gain * 100:+.1f} points of test accuracy "
        "over training from scratch")
    return {"labelled": labelled, "epochs": epochs, "ae_epochs": ae_epochs,
            "pretrain": pretrain, "noise_std": noise_std if pretrain == "denoising" else None,
            "codings": codings, "train_images": len(xtr), "test_images": len(xte),
            "source": source, "device": device, "autoencoder_test_mse": ae_mse,
            "autoencoder_seconds": ae_seconds, **results,
            "test_accuracy": results["pretrained"]["test_accuracy"],
            "scratch_test_accuracy": results["scratch"]["test_accuracy"],
            "epoch_seconds": [results[n]["seconds"] / max(epochs, 1) for n in VARIANTS]}


def plot(result, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name in VARIANTS:
        accs = result[name]["test_accuracy_per_epoch"]
        ax.plot(range(1, len(accs) + 1), accs, "o-", ms=3, label=name.replace("_", ", "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{result['labelled']} labelled images")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, epochs=30, batch_size=128)
    parser.add_argument("--ae-epochs", type=int, default=5,
                        help="epochs of autoencoder pretraining on all training images")
    parser.add_argument("--labelled", type=int, default=500)
    parser.add_argument("--codings", type=int, default=64)
    parser.add_argument("--pretrain", choices=["denoising", "plain"], default="denoising",
                        help="the autoencoder pretrained on the unlabelled images")
    parser.add_argument("--noise-std", type=float, default=0.3)
    parser.add_argument("--plot", "--out", dest="plot", metavar="FILE.png",
                        default="pretrain.png")
    args = parser.parse_args(argv)
    result = run(args.ae_epochs, args.labelled, args.epochs, args.batch_size, args.lr,
                 args.codings, args.data, args.device, args.limit, args.seed,
                 progress=not args.no_progress, pretrain=args.pretrain,
                 noise_std=args.noise_std)
    if args.plot:
        plot(result, args.plot)
        result["plot"] = args.plot
    write_report(args.report, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
