"""A LeNet-5 training epoch on Fashion-MNIST: convnet against PyTorch CPU, side by side.

    python benchmarks/bench_lenet_epoch.py [--epochs 2] [--data DIR]

The course's LeNet-5 (tanh, average pooling, Adam 1e-3, batch 128) on the whole training
split that convnet finds (60,000 images with the full data set, else the embedded
sample's training part). Both sides include their input pipeline: convnet's DataLoader
(shuffling, normalising, prefetching) and, for PyTorch, the same batches cut from the
same normalised NumPy array. Prints the median epoch time of each and the ratio
(torch / convnet: above 1 means convnet is faster).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_training import lenet


def convnet_epochs(epochs, data, seed):
    import convnet as cn
    from convnet.data import fashion_mnist_loaders
    from convnet.train import fit

    cn.manual_seed(seed)
    train, _, _, info = fashion_mnist_loaders(root=data, batch_size=128, val_fraction=0.0,
                                              seed=seed)
    model = lenet(cn.nn)
    history = fit(model, train, None, epochs=epochs,
                  optimizer=cn.optim.Adam(model.parameters(), lr=1e-3), progress=False,
                  log=lambda s: None)
    return history["epoch_seconds"], info


def torch_epochs(epochs, data, seed):
    import torch

    import convnet as cn
    from convnet.data import load_fashion_mnist

    torch.manual_seed(seed)
    torch.set_num_threads(cn.get_num_threads())
    images, labels = load_fashion_mnist(root=data)["train"]
    x_all = ((images.astype(np.float32) / 255.0 - 0.2860) / 0.3530)[:, None]
    y_all = labels.astype(np.int64)
    model = lenet(torch.nn)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(x_all))
        for start in range(0, len(order), 128):
            idx = order[start:start + 128]
            x, y = torch.from_numpy(x_all[idx]), torch.from_numpy(y_all[idx])
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        seconds.append(time.perf_counter() - t0)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ours, info = convnet_epochs(args.epochs, args.data, args.seed)
    time.sleep(0.2)
    theirs = torch_epochs(args.epochs, args.data, args.seed)
    t_ours, t_torch = float(np.median(ours)), float(np.median(theirs))
    print(f"data: {info['source']}, {info['n_train']} training images, batch 128, Adam 1e-3")
    print(f"convnet epoch {t_ours:.2f} s   torch epoch {t_torch:.2f} s   "
          f"ratio {t_torch / t_ours:.2f} (torch / convnet; medians of {args.epochs})")


if __name__ == "__main__":
    main()
