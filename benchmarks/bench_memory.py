"""Peak memory of one training step, float32 against bfloat16, as ``convnet.memory``
counts it (live tensor storage, values saved for backward and gradients in flight).

    python benchmarks/bench_memory.py [--models lenet resnet20 vgg11] [--batch-size N]

For each model at its usual batch size, three precisions: fp32; ``autocast`` (bfloat16
products, float32 master weights, ``convnet.amp.autocast("cpu")``); ``bf16`` (the model and
its input cast to bfloat16, ``model.bfloat16()``). One warm-up step first (the optimizer's
state exists then), then the measured step (SGD with momentum). Columns:

- ``activations``: bytes live at the end of the forward pass minus those live before it
  (what the graph keeps for backward: activations, saved masks and statistics, and under
  autocast the bfloat16 copies of the weights);
- ``w/o weight copies``: the same less autocast's cached bfloat16 copies of the weights
  (PyTorch's autocast keeps them too: for a model with many weights and small maps,
  VGG-11's 129M on 32x32 images, autocast needs more memory than float32);
- ``step peak``: the peak during forward + backward + step minus the bytes live before;
- ``total peak``: ``max_memory_allocated()`` during the step (weights, optimizer state,
  the batch included).

The target: activations at most 0.55x of float32's in bfloat16.
"""

from __future__ import annotations

import argparse
import gc
import json

import numpy as np

# name -> (input shape (C, H, W), usual batch size): LeNet-5 on Fashion-MNIST, the CIFAR
# ResNet-20 and VGG-11 on 32x32 colour images
MODELS = {"lenet": ((1, 28, 28), 128), "resnet20": ((3, 32, 32), 128),
          "vgg11": ((3, 32, 32), 128)}
PRECISIONS = ("fp32", "autocast", "bf16")


def measure(name: str, precision: str, batch: int) -> dict:
    import convnet as cn
    import convnet.functional as F
    from convnet import memory
    from convnet.amp import autocast_mode

    shape, _ = MODELS[name]
    cn.manual_seed(0)
    model = cn.models.get_model(name, num_classes=10, in_channels=shape[0])
    x = cn.randn(batch, *shape)
    y = cn.tensor(np.arange(batch) % 10)
    if precision == "bf16":
        model.bfloat16()
        x = x.bfloat16()
    opt = cn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    region = cn.autocast("cpu", enabled=precision == "autocast")

    def step(record: dict | None):
        opt.zero_grad()
        gc.collect()
        base = memory.memory_allocated()
        memory.reset_peak_memory_stats()
        with region:
            loss = F.cross_entropy(model(x), y)
            # the bfloat16 copies of the float32 weights that the region cached
            copies = sum(hit[2]._data.nbytes for hit in autocast_mode._tls.cache.values())
        gc.collect()
        after_forward = memory.memory_allocated()
        loss.backward()
        opt.step()
        if record is not None:
            record.update(base=base, activations=after_forward - base, weight_copies=copies,
                          step_peak=memory.max_memory_allocated() - base,
                          total_peak=memory.max_memory_allocated(), loss=float(loss.item()))

    step(None)
    out: dict = {}
    step(out)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=None,
                        help="instead of each model's usual one")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    mib = 2.0**-20
    results: dict = {}
    print(f"{'model':<9} {'batch':>5} {'precision':<9} {'activations MiB':>16} {'x fp32':>7} "
          f"{'w/o weight copies':>18} {'x fp32':>7} {'step peak MiB':>14} {'x fp32':>7} "
          f"{'total peak MiB':>15}")
    for name in args.models:
        batch = args.batch_size or MODELS[name][1]
        rows = results[name] = {}
        for precision in PRECISIONS:
            r = rows[precision] = measure(name, precision, batch)
            r["batch"] = batch
            ref = rows["fp32"]
            own = r["activations"] - r["weight_copies"]
            print(f"{name:<9} {batch:>5} {precision:<9} {r['activations'] * mib:>16.2f} "
                  f"{r['activations'] / ref['activations']:>7.3f} {own * mib:>18.2f} "
                  f"{own / ref['activations']:>7.3f} {r['step_peak'] * mib:>14.2f} "
                  f"{r['step_peak'] / ref['step_peak']:>7.3f} {r['total_peak'] * mib:>15.2f}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
