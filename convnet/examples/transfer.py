"""Transfer learning on Fashion-MNIST (the course's point: reuse speeds training and needs
less data).

    python -m convnet.examples.transfer [--small 500] [--epochs-a 3] [--epochs-b 5]

1. Train LeNet-5 (ReLU, max pooling) on five classes (task A: 0-4, or the even ones with
   ``--split alternate``) with all their training images.
2. For the other five, with only ``--small`` labelled training images, train the same
   architecture twice: once with the feature extractor (C1 and C3, ``--frozen 2``) copied
   from step 1 and frozen under new upper layers, once from scratch. Both see the same
   images for the same epochs. (C5 is a convolution in LeNet's table but, on a 5x5 map, a
   dense layer specialised to task A: freezing it too, ``--frozen 3``, measured worse
   than training from scratch.)
3. Print their test accuracies on task B per epoch (and plot them with ``--plot``).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import convnet as cn
from convnet import nn
from convnet.data import ArrayDataset, DataLoader, load_fashion_mnist, transforms
from convnet.models import lenet5
from convnet.train import evaluate, fit

MEAN, STD = 0.2860, 0.3530


def _subset(images, labels, classes, limit=None, seed=0):
    keep = np.isin(labels, classes)
    x, y = images[keep], _relabel(labels[keep], classes)
    if limit is not None:
        order = np.random.default_rng(seed).permutation(len(x))[:limit]
        x, y = x[order], y[order]
    return x, y


def _loader(x, y, batch, shuffle, seed):
    ds = ArrayDataset(x, y, transform=transforms.Normalize(MEAN, STD))
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, seed=seed)


def conv_layers(model, count=None) -> list[tuple[str, nn.Module]]:
    """The model's convolution layers in order (the first ``count`` of them)."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return convs[:count]


def reuse(source, target, count=None) -> None:
    """Copy the first ``count`` convolution layers of ``source`` into ``target`` and freeze
    them there."""
    state = source.state_dict()
    keys = [f"{name}.{p}" for name, m in conv_layers(source, count)
            for p, _ in m.named_parameters(recurse=False)]
    target.load_state_dict({k: state[k] for k in keys}, strict=False)
    for _, module in conv_layers(target, count):
        module.requires_grad_(False)


SPLITS = {"halves": ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9]),
          "alternate": ([0, 2, 4, 6, 8], [1, 3, 5, 7, 9])}


def _relabel(labels, classes):
    lookup = np.full(10, -1, np.int64)
    lookup[classes] = np.arange(len(classes))
    return lookup[labels]


def run(small=500, epochs_a=3, epochs_b=5, batch=64, data=None, seed=0, progress=True,
        log=print, split="halves", frozen=2) -> dict:
    sets = load_fashion_mnist(root=data)
    (xtr, ytr), (xte, yte) = sets["train"], sets["test"]
    first, second = SPLITS[split]

    cn.manual_seed(seed)
    base = lenet5(num_classes=5, activation="relu", pooling="max")
    fit(base, _loader(*_subset(xtr, ytr, first), 128, True, seed),
        _loader(*_subset(xte, yte, first), 256, False, seed), epochs=epochs_a,
        optimizer=cn.optim.Adam(base.parameters(), lr=1e-3), progress=progress, log=log)
    base_acc = evaluate(base, _loader(*_subset(xte, yte, first), 256, False, seed))[1]
    log(f"task A (classes {first}, {int(np.isin(ytr, first).sum())} images): test "
        f"accuracy {base_acc:.4f}")

    small_train = _loader(*_subset(xtr, ytr, second, small, seed), batch, True, seed)
    test_b = _loader(*_subset(xte, yte, second), 256, False, seed)
    results = {}
    for name in ("transfer", "scratch"):
        cn.manual_seed(seed + 1)
        model = lenet5(num_classes=5, activation="relu", pooling="max")
        if name == "transfer":
            reuse(base, model, frozen)
        trainable = [p for p in model.parameters() if p.requires_grad]
        history = fit(model, small_train, test_b, epochs=epochs_b,
                      optimizer=cn.optim.Adam(trainable, lr=1e-3), progress=progress, log=log)
        results[name] = {"test_accuracy_per_epoch": history["val_accuracy"],
                         "trainable_parameters": sum(p.numel() for p in trainable),
                         "seconds": sum(history["epoch_seconds"])}
    log(f"task B (classes {second}, {small} labelled images), test accuracy per epoch:")
    for name, r in results.items():
        accs = "  ".join(f"{a:.3f}" for a in r["test_accuracy_per_epoch"])
        log(f"  {name:<9} {accs}   ({r['trainable_parameters']:,} trainable parameters, "
            f"{r['seconds']:.1f}s)")
    return {"task_a_accuracy": base_acc, "small": small, "split": split, "frozen": frozen,
            "source": sets["source"], **results}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=500, help="labelled images for task B")
    parser.add_argument("--epochs-a", type=int, default=3)
    parser.add_argument("--epochs-b", type=int, default=5)
    parser.add_argument("--data", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=sorted(SPLITS), default="halves",
                        help="which five classes form task A (halves: 0-4; alternate: even)")
    parser.add_argument("--frozen", type=int, choices=[1, 2, 3], default=2,
                        help="how many convolution layers to reuse frozen")
    parser.add_argument("--report", metavar="FILE.json")
    parser.add_argument("--plot", metavar="FILE.png")
    args = parser.parse_args(argv)
    out = run(args.small, args.epochs_a, args.epochs_b, data=args.data, seed=args.seed,
              split=args.split, frozen=args.frozen)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(out, f, indent=1)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name in ("transfer", "scratch"):
            accs = out[name]["test_accuracy_per_epoch"]
            ax.plot(range(1, len(accs) + 1), accs, "o-", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy, task B")
        ax.set_title(f"{args.small} labelled images")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)


if __name__ == "__main__":
    main()
