"""CycleGAN (Zhu et al. 2017) between two unpaired domains cut from Fashion-MNIST:
sneakers (class 7) and ankle boots (class 9) by default.

    python -m convnet.examples.cyclegan [--domains 7 9] [--epochs N] [--batch-size B]
        [--limit N] [--data DIR] [--device cpu|cuda] [--out DIR] [--report FILE.json]

Two generators, G: A -> B and F: B -> A (ResNet generators with instance norm), and two
PatchGAN discriminators, D_A and D_B, trained with the paper's losses: least-squares
adversarial losses, the cycle-consistency loss ``lambda * (|F(G(a)) - a|_1 + |G(F(b)) -
b|_1)`` (lambda 10) and, with ``--identity W``, the identity loss ``W * lambda * (|G(b) -
b|_1 + |F(a) - a|_1)``. Adam (lr 2e-4, betas 0.5/0.999); A and B batches are drawn
independently (no pairs). The paper's pool of 50 past fakes for the discriminators is
left out.

After every epoch ``OUT/translations_epoch_NNN.png`` shows test images translated both
ways; rows: input A, G(A), F(G(A)), input B, F(B), G(F(B)). At the end the held-out test
images of both classes give the cycle-consistency L1 and the fraction of translations the
quality classifier (:mod:`convnet.examples._quality`) puts in the target class.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np

import convnet as cn
import convnet.functional as F
from convnet.data import FASHION_MNIST_CLASSES, load_fashion_mnist
from convnet.models.gan import CycleGANGenerator, PatchDiscriminator

from . import _quality
from .gan import save_grid


def _ls(pred, value: float):
    """Least-squares GAN loss: mean of (pred - value)^2."""
    return ((pred - value) * (pred - value)).mean()


def _batch(images, idx, device):
    return cn.tensor(_quality.to_unit_range(images[idx]), device=device)


class CycleGAN:
    """The four networks and their two optimizers (generators together, discriminators
    together), with one training step."""

    def __init__(self, width: int = 16, n_blocks: int = 3, disc_width: int = 32,
                 lr: float = 2e-4, betas=(0.5, 0.999), cycle_weight: float = 10.0,
                 identity_weight: float = 0.0, device: str = "cpu"):
        self.g_ab = CycleGANGenerator(width, n_blocks)   # G: A -> B
        self.g_ba = CycleGANGenerator(width, n_blocks)   # F: B -> A
        self.d_a = PatchDiscriminator(disc_width)
        self.d_b = PatchDiscriminator(disc_width)
        if device != "cpu":
            for m in self.modules():
                m.to(device)
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.opt_g = cn.optim.Adam(itertools.chain(self.g_ab.parameters(),
                                                   self.g_ba.parameters()), lr=lr, betas=betas)
        self.opt_d = cn.optim.Adam(itertools.chain(self.d_a.parameters(),
                                                   self.d_b.parameters()), lr=lr, betas=betas)

    def modules(self):
        return (self.g_ab, self.g_ba, self.d_a, self.d_b)

    def train(self, mode: bool = True):
        for m in self.modules():
            m.train(mode)

    def step(self, a, b) -> dict:
        """One generator update then one discriminator update on batches ``a``, ``b``."""
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        adv = _ls(self.d_b(fake_b), 1.0) + _ls(self.d_a(fake_a), 1.0)
        cycle = F.l1_loss(self.g_ba(fake_b), a) + F.l1_loss(self.g_ab(fake_a), b)
        loss_g = adv + self.cycle_weight * cycle
        if self.identity_weight:
            same = F.l1_loss(self.g_ab(b), b) + F.l1_loss(self.g_ba(a), a)
            loss_g = loss_g + self.identity_weight * self.cycle_weight * same
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()

        fake_b, fake_a = fake_b.detach(), fake_a.detach()
        loss_d = 0.5 * (_ls(self.d_a(a), 1.0) + _ls(self.d_a(fake_a), 0.0)
                        + _ls(self.d_b(b), 1.0) + _ls(self.d_b(fake_b), 0.0))
        self.opt_d.zero_grad()   # also clears what the generator step left in D
        loss_d.backward()
        self.opt_d.step()
        return {"g_adv": adv.item(), "cycle": cycle.item(), "d": loss_d.item()}

    def translate(self, a, b, batch: int = 250, device: str = "cpu"):
        """G(a), F(G(a)), F(b), G(F(b)) as NumPy arrays, in eval mode without a graph."""
        self.train(False)
        outs = [[], [], [], []]
        with cn.no_grad():
            for i in range(0, max(len(a), len(b)), batch):
                if i < len(a):
                    ga = self.g_ab(_batch(a, slice(i, i + batch), device))
                    outs[0].append(ga.numpy())
                    outs[1].append(self.g_ba(ga).numpy())
                if i < len(b):
                    fb = self.g_ba(_batch(b, slice(i, i + batch), device))
                    outs[2].append(fb.numpy())
                    outs[3].append(self.g_ab(fb).numpy())
        self.train(True)
        return [np.concatenate(o) if o else np.zeros((0, 1, 28, 28), np.float32) for o in outs]


def translation_grid(model, a, b, path, device="cpu") -> str:
    """Rows: a, G(a), F(G(a)), b, F(b), G(F(b)) (``len(a) == len(b)`` images per row)."""
    ga, fga, fb, gfb = model.translate(a, b, device=device)
    rows = [_quality.to_unit_range(a), ga, fga, _quality.to_unit_range(b), fb, gfb]
    return save_grid(np.concatenate(rows), path, nrow=len(a))


def evaluate(model, a, b, judge, class_a: int, class_b: int, device="cpu") -> dict:
    """Cycle-consistency L1 on ``a`` and ``b`` and the fraction of G(a) the classifier
    labels ``class_b`` (and of F(b) labelled ``class_a``)."""
    ga, fga, fb, gfb = model.translate(a, b, device=device)
    pred_ga = _quality.classify(judge, ga)[0].argmax(axis=1)
    pred_fb = _quality.classify(judge, fb)[0].argmax(axis=1)
    return {"cycle_l1_a": float(np.abs(fga - _quality.to_unit_range(a)).mean()),
            "cycle_l1_b": float(np.abs(gfb - _quality.to_unit_range(b)).mean()),
            "g_ab_as_b": float((pred_ga == class_b).mean()),
            "g_ba_as_a": float((pred_fb == class_a).mean())}


def run(domains=(7, 9), epochs=2, batch_size=16, limit=3000, data=None, device="cpu",
        out="cyclegan_out", seed=0, identity=0.0, width=16, n_blocks=3, eval_images=1000,
        classifier=None, progress=True, log=print) -> dict:
    class_a, class_b = domains
    sets = load_fashion_mnist(root=data)
    (xtr, ytr), (xte, yte) = sets["train"], sets["test"]
    rng = np.random.default_rng(seed)
    # A and B from disjoint halves of the shuffled training set, so no image of one
    # domain has a twin in the other (they are different classes anyway; this keeps the
    # two domains' sources unpaired by construction)
    order = rng.permutation(len(xtr))
    half_a, half_b = order[: len(order) // 2], order[len(order) // 2:]
    train_a = xtr[half_a[ytr[half_a] == class_a]][:limit]
    train_b = xtr[half_b[ytr[half_b] == class_b]][:limit]
    test_a, test_b = xte[yte == class_a][:eval_images], xte[yte == class_b][:eval_images]
    names = FASHION_MNIST_CLASSES[class_a], FASHION_MNIST_CLASSES[class_b]
    log(f"CycleGAN: A = {names[0]} ({len(train_a)} images), B = {names[1]} "
        f"({len(train_b)} images), unpaired ({sets['source']})")

    judge, judge_info = _quality.load_or_train_classifier(classifier, data, progress=progress,
                                                          log=log)
    cn.manual_seed(seed)
    model = CycleGAN(width, n_blocks, identity_weight=identity, device=device)
    show_a, show_b = test_a[:10], test_b[:10]
    untrained = evaluate(model, test_a, test_b, judge, class_a, class_b, device)
    inputs = {"a_as_b": float((_quality.classify(judge, test_a)[0].argmax(1) == class_b).mean()),
              "b_as_a": float((_quality.classify(judge, test_b)[0].argmax(1) == class_a).mean())}
    steps = max(len(train_a), len(train_b)) // batch_size
    history = {"g_adv": [], "cycle": [], "d": [], "epoch_seconds": [], "translations": []}
    for epoch in range(epochs):
        t0 = time.perf_counter()
        ia, ib = rng.permutation(len(train_a)), rng.permutation(len(train_b))
        sums = {"g_adv": 0.0, "cycle": 0.0, "d": 0.0}
        bar = range(steps)
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(bar, desc=f"epoch {epoch + 1}/{epochs}", dynamic_ncols=True,
                       unit="batch")
        for i in bar:
            # the smaller domain wraps around
            sa = ia[np.arange(i * batch_size, (i + 1) * batch_size) % len(ia)]
            sb = ib[np.arange(i * batch_size, (i + 1) * batch_size) % len(ib)]
            losses = model.step(_batch(train_a, sa, device), _batch(train_b, sb, device))
            for k, v in losses.items():
                sums[k] += v
            if progress:
                bar.set_postfix(G=f"{sums['g_adv'] / (i + 1):.3f}",
                                cyc=f"{sums['cycle'] / (i + 1):.3f}",
                                D=f"{sums['d'] / (i + 1):.3f}", refresh=False)
        for k in sums:
            history[k].append(sums[k] / max(steps, 1))
        history["epoch_seconds"].append(time.perf_counter() - t0)
        history["translations"].append(translation_grid(
            model, show_a, show_b, os.path.join(out, f"translations_epoch_{epoch + 1:03d}.png"),
            device))
        log(f"epoch {epoch + 1}/{epochs}  G adversarial {history['g_adv'][-1]:.4f}  "
            f"cycle L1 {history['cycle'][-1]:.4f}  D {history['d'][-1]:.4f}  "
            f"{history['epoch_seconds'][-1]:.1f}s")
    final = evaluate(model, test_a, test_b, judge, class_a, class_b, device)
    path = translation_grid(model, show_a, show_b, os.path.join(out, "translations.png"),
                            device)
    log(f"test images ({len(test_a)} {names[0]}, {len(test_b)} {names[1]}):")
    for label, r in (("trained", final), ("untrained", untrained)):
        log(f"  {label:<9} cycle L1 A {r['cycle_l1_a']:.4f}  B {r['cycle_l1_b']:.4f}   "
            f"G(A) classified {names[1]} {r['g_ab_as_b']:.3f}   "
            f"F(B) classified {names[0]} {r['g_ba_as_a']:.3f}")
    log(f"  inputs    A classified {names[1]} {inputs['a_as_b']:.3f}   "
        f"B classified {names[0]} {inputs['b_as_a']:.3f}")
    return {"domains": [int(class_a), int(class_b)], "names": list(names), "epochs": epochs,
            "batch_size": batch_size, "n_train": [len(train_a), len(train_b)],
            "identity_weight": identity, "seed": seed, "device": device,
            "source": sets["source"], "final": final, "untrained": untrained,
            "inputs": inputs, "history": history, "translations": path,
            "classifier": judge_info}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, nargs=2, default=[7, 9], metavar=("A", "B"),
                        help="Fashion-MNIST classes of the two domains (default 7 9)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=3000, help="training images per domain")
    parser.add_argument("--identity", type=float, default=0.0,
                        help="identity loss weight (x the cycle weight; the paper uses 0.5)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default="cyclegan_out")
    parser.add_argument("--report", metavar="FILE.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classifier", default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for convnet's kernels (default: all cores)")
    args = parser.parse_args(argv)
    a, b = args.domains
    if not (0 <= a < 10 and 0 <= b < 10) or a == b:
        parser.error(f"--domains: expected two different classes in 0..9, got {a} {b}")
    for name in ("epochs", "batch_size", "limit"):
        if getattr(args, name) < (0 if name == "epochs" else 1):
            parser.error(f"--{name.replace('_', '-')}: must be positive")
    if args.threads:
        cn.set_num_threads(args.threads)
    out = run((a, b), args.epochs, args.batch_size, args.limit, args.data, args.device,
              args.out, args.seed, args.identity, classifier=args.classifier)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
