"""Training epochs on Fashion-MNIST: convnet against PyTorch CPU, side by side.

    python benchmarks/bench_lenet_epoch.py [--model lenet|resnet20|all] [--epochs 3]
                                           [--limit N] [--data DIR]

Same model, data, batch size (128) and optimizer (Adam 1e-3) on both sides:

- ``lenet``: the course's LeNet-5 (tanh, average pooling) on the whole training split that
  convnet finds (60,000 images with the full data set, else the embedded sample's
  training part).
- ``resnet20``: He et al.'s ResNet-20 for small images (3x3 stem, three stages of three
  BasicBlocks with 16, 32, 64 channels, projection shortcuts, global average pool) on
  28x28 single-channel images, convnet's ``models.resnet20`` against the same layers in
  PyTorch (the parameter counts are checked to agree). A full epoch takes minutes on two
  cores, so by default it runs the first 5,120 training images (40 batches); ``--limit 0``
  runs the whole split.

Both sides include their input pipeline: convnet's DataLoader (shuffling, normalising,
prefetching) and, for PyTorch, the same batches cut from the same normalised NumPy array.
Epochs alternate between the two (the shared machine's load drifts over minutes). Prints
the median epoch time of each and the ratio (torch / convnet: above 1 means convnet is
faster).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_training import lenet

DEFAULT_LIMIT = {"lenet": 0, "resnet20": 5120}


def torch_resnet20(num_classes=10, in_channels=1, width=16):
    """convnet.models.resnet20's layers in PyTorch (BasicBlock, projection shortcuts, He init)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                                nn.BatchNorm2d(planes))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + identity)

    layers = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    inplanes = width
    for i, planes in enumerate((width, 2 * width, 4 * width)):
        for j in range(3):
            layers.append(Block(inplanes, planes, 2 if i > 0 and j == 0 else 1))
            inplanes = planes
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inplanes, num_classes)]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


def build(name, framework):
    if name == "lenet":
        return lenet(framework.nn)
    if framework.__name__ == "torch":
        return torch_resnet20()
    from convnet.models import resnet20

    return resnet20(num_classes=10, in_channels=1)


def convnet_epoch_runner(name, data, seed, limit):
    """A function that trains one more epoch of convnet's model and returns its seconds."""
    import convnet as cn
    from convnet.data import fashion_mnist_loaders
    from convnet.train import fit

    cn.manual_seed(seed)
    train, _, _, info = fashion_mnist_loaders(root=data, batch_size=128, val_fraction=0.0,
                                              seed=seed, limit=limit or None)
    model = build(name, cn)
    optimizer = cn.optim.Adam(model.parameters(), lr=1e-3)

    def epoch():
        history = fit(model, train, None, epochs=1, optimizer=optimizer, progress=False,
                      log=lambda s: None)
        return history["epoch_seconds"][0]

    return epoch, info, sum(p.numel() for p in model.parameters())


def torch_epoch_runner(name, data, seed, limit):
    """The same for PyTorch: one more epoch over the same normalised images per call."""
    import torch

    import convnet as cn
    from convnet.data import load_fashion_mnist

    torch.manual_seed(seed)
    torch.set_num_threads(cn.get_num_threads())
    images, labels = load_fashion_mnist(root=data)["train"]
    if limit:
        images, labels = images[:limit], labels[:limit]
    x_all = ((images.astype(np.float32) / 255.0 - 0.2860) / 0.3530)[:, None]
    y_all = labels.astype(np.int64)
    model = build(name, torch)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)

    def epoch():
        t0 = time.perf_counter()
        order = rng.permutation(len(x_all))
        for start in range(0, len(order), 128):
            idx = order[start:start + 128]
            x, y = torch.from_numpy(x_all[idx]), torch.from_numpy(y_all[idx])
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return time.perf_counter() - t0

    return epoch, sum(p.numel() for p in model.parameters())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["lenet", "resnet20", "all"], default="lenet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None,
                        help="first N training images (0: all; default: all for lenet, "
                             "5120 for resnet20)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import convnet as cn

    for name in (["lenet", "resnet20"] if args.model == "all" else [args.model]):
        limit = DEFAULT_LIMIT[name] if args.limit is None else args.limit
        our_epoch, info, n_ours = convnet_epoch_runner(name, args.data, args.seed, limit)
        their_epoch, n_theirs = torch_epoch_runner(name, args.data, args.seed, limit)
        if n_ours != n_theirs:
            raise RuntimeError(f"{name}: {n_ours} parameters in convnet, {n_theirs} in torch")
        # Epochs alternate, so that a change in the shared machine's load over the minutes
        # of the run hits both sides alike; the pauses let one library's threads settle.
        ours, theirs = [], []
        for _ in range(args.epochs):
            ours.append(our_epoch())
            time.sleep(0.2)
            theirs.append(their_epoch())
            time.sleep(0.2)
        t_ours, t_torch = float(np.median(ours)), float(np.median(theirs))
        print(f"{name} ({n_ours} parameters), data: {info['source']}, {info['n_train']} "
              f"training images, batch 128, Adam 1e-3, {cn.get_num_threads()} threads")
        print(f"  convnet epoch {t_ours:.2f} s   torch epoch {t_torch:.2f} s   "
              f"ratio {t_torch / t_ours:.2f} (torch / convnet; medians of {args.epochs})",
              flush=True)


if __name__ == "__main__":
    main()
