"""A GAN (dense layers) or a DCGAN (transposed convolutions, batch norm, LeakyReLU) on
Fashion-MNIST, with the generated images' quality measured by a classifier.

    python -m convnet.examples.gan --model gan|dcgan [--epochs N] [--batch-size B]
        [--data DIR] [--device cpu|cuda] [--out DIR] [--report FILE.json] [--seed S]

Training alternates one discriminator and one generator update per batch, with the usual
stabilisers: Adam (lr 2e-4, betas 0.5/0.999) for both, one-sided label smoothing (the
discriminator's real targets are 0.9), the non-saturating generator loss (the generator
maximises log D(G(z)) rather than minimising log(1 - D(G(z)))), binary cross-entropy on
logits. A grid of samples from the same 64 codings is saved after every epoch
(``OUT/samples_epoch_NNN.png``).

At the end the samples are judged by a Fashion-MNIST classifier trained by convnet (see
:mod:`convnet.examples._quality`): mean class confidence, spread over the ten classes and
the Fréchet distance of its features to real test images, printed with the same distance
for held-out real images (the floor) and for the untrained generator (the ceiling).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import convnet as cn
import convnet.functional as F
from convnet.data import ArrayDataset, DataLoader, load_fashion_mnist, transforms
from convnet.models.gan import gan_pair

from . import _quality

# --------------------------------------------------------------------------- image grids


def image_grid(images, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """Tile (N, 1, H, W) or (N, H, W) images in [-1, 1] into one (rows, cols) array in
    [0, 1], ``nrow`` images per row, ``pad`` pixels of white between and around them."""
    x = np.asarray(images, np.float32)
    if x.ndim == 4:
        x = x[:, 0]
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"images: expected (N, 1, H, W) or (N, H, W), got shape "
                         f"{np.asarray(images).shape}")
    n, h, w = x.shape
    rows = -(-n // nrow)
    grid = np.ones((rows * (h + pad) + pad, nrow * (w + pad) + pad), np.float32)
    for i, img in enumerate(np.clip((x + 1) / 2, 0, 1)):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h,
             pad + c * (w + pad):pad + c * (w + pad) + w] = img
    return grid


def save_grid(images, path, nrow: int = 8, pad: int = 2) -> str:
    """Write :func:`image_grid` as a grayscale PNG, one file pixel per image pixel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    plt.imsave(path, image_grid(images, nrow, pad), cmap="gray", vmin=0.0, vmax=1.0)
    return str(path)


# --------------------------------------------------------------------------- training


def bce_logits(logits, value: float):
    """Binary cross-entropy of ``logits`` against a constant target ``value``."""
    target = np.full(logits.shape, value, dtype=logits.dtype)
    if logits.device != "cpu":
        target = cn.tensor(target, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target)


def sample_codings(n: int, latent_dim: int, rng: np.random.Generator, device="cpu"):
    return cn.tensor(rng.standard_normal((n, latent_dim)).astype(np.float32), device=device)


def discriminator_step(generator, discriminator, opt_d, real, z, real_target: float = 0.9):
    """One discriminator update on a real batch and on G(z); returns its loss and the mean
    probabilities it gave the real and the generated images."""
    with cn.no_grad():
        fake = generator(z)
    real_logits, fake_logits = discriminator(real), discriminator(fake)
    loss = bce_logits(real_logits, real_target) + bce_logits(fake_logits, 0.0)
    opt_d.zero_grad()
    loss.backward()
    opt_d.step()
    return (loss.item(), float(F.sigmoid(real_logits.detach()).mean().item()),
            float(F.sigmoid(fake_logits.detach()).mean().item()))


def generator_step(generator, discriminator, opt_g, z):
    """One generator update with the non-saturating loss -log D(G(z)); the discriminator
    is not changed (its gradients are computed, then cleared)."""
    loss = bce_logits(discriminator(generator(z)), 1.0)
    opt_g.zero_grad()
    loss.backward()
    opt_g.step()
    discriminator.zero_grad()
    return loss.item()


def generate(generator, n: int, latent_dim: int, seed: int, device="cpu",
             batch: int = 500) -> np.ndarray:
    """``n`` images (N, 1, 28, 28) from the generator in eval mode, codings from ``seed``."""
    rng = np.random.default_rng(seed)
    was_training = generator.training
    generator.eval()
    out = []
    with cn.no_grad():
        for i in range(0, n, batch):
            out.append(generator(sample_codings(min(batch, n - i), latent_dim, rng,
                                                device)).numpy())
    generator.train(was_training)
    return np.concatenate(out)


def train_gan(generator, discriminator, images, epochs: int = 5, batch_size: int = 64,
              lr: float = 2e-4, betas=(0.5, 0.999), real_target: float = 0.9,
              latent_dim: int = 64, seed: int = 0, device: str = "cpu", out=None,
              progress: bool = True, log=print) -> dict:
    """Train on uint8 ``images`` (N, 28, 28) scaled to [-1, 1]; save a sample grid per
    epoch in ``out`` (when given). Returns the per-epoch history."""
    loader = DataLoader(ArrayDataset(images, np.zeros(len(images), np.int64),
                                     transform=transforms.Normalize(0.5, 0.5)),
                        batch_size=batch_size, shuffle=True, seed=seed)
    opt_g = cn.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = cn.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    rng = np.random.default_rng(seed + 1)
    fixed_z = sample_codings(64, latent_dim, np.random.default_rng(seed + 2), device)
    history = {k: [] for k in ("d_loss", "g_loss", "d_real", "d_fake", "epoch_seconds",
                               "samples")}
    generator.train()
    discriminator.train()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        sums = np.zeros(4)
        batches = loader
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", dynamic_ncols=True,
                           unit="batch")
        for i, (x, _) in enumerate(batches, 1):
            x = x.to(device) if device != "cpu" else x
            d_loss, d_real, d_fake = discriminator_step(
                generator, discriminator, opt_d, x,
                sample_codings(len(x), latent_dim, rng, device), real_target)
            g_loss = generator_step(generator, discriminator, opt_g,
                                    sample_codings(len(x), latent_dim, rng, device))
            sums += (d_loss, g_loss, d_real, d_fake)
            if progress:
                batches.set_postfix(D=f"{sums[0] / i:.3f}", G=f"{sums[1] / i:.3f}",
                                    Dx=f"{sums[2] / i:.2f}", DGz=f"{sums[3] / i:.2f}",
                                    refresh=False)
        means = sums / max(len(loader), 1)
        for key, v in zip(("d_loss", "g_loss", "d_real", "d_fake"), means):
            history[key].append(float(v))
        history["epoch_seconds"].append(time.perf_counter() - t0)
        if out is not None:
            generator.eval()
            with cn.no_grad():
                samples = generator(fixed_z).numpy()
            generator.train()
            history["samples"].append(save_grid(
                samples, os.path.join(out, f"samples_epoch_{epoch + 1:03d}.png")))
        log(f"epoch {epoch + 1}/{epochs}  D loss {means[0]:.4f}  G loss {means[1]:.4f}  "
            f"D(x) {means[2]:.3f}  D(G(z)) {means[3]:.3f}  "
            f"{history['epoch_seconds'][-1]:.1f}s")
    return history


# --------------------------------------------------------------------------- the example


DEFAULTS = {"gan": {"epochs": 5, "batch_size": 64}, "dcgan": {"epochs": 2, "batch_size": 64}}


def _fmt(q):
    return (f"confidence {q['confidence']:.3f}  class entropy {q['class_entropy']:.3f} "
            f"(max {np.log(10):.3f})  Fréchet {q['frechet']:.2f}")


def run(model="gan", epochs=None, batch_size=None, data=None, device="cpu", out="gan_out",
        seed=0, limit=None, eval_samples=2000, classifier=None, classifier_epochs=2,
        latent_dim=64, progress=True, log=print) -> dict:
    epochs = DEFAULTS[model]["epochs"] if epochs is None else epochs
    batch_size = DEFAULTS[model]["batch_size"] if batch_size is None else batch_size
    sets = load_fashion_mnist(root=data)
    images = sets["train"][0] if limit is None else sets["train"][0][:limit]
    log(f"{model}: {len(images)} training images ({sets['source']})")

    judge, judge_info = _quality.load_or_train_classifier(
        classifier, data, epochs=classifier_epochs, progress=progress, log=log)
    log(f"quality classifier: test accuracy {judge_info['test_accuracy']:.4f} "
        f"({'cached ' if judge_info['cached'] else ''}{judge_info['path']})")
    pick = np.random.default_rng(seed + 3)
    test_images = sets["test"][0]
    reference = test_images[pick.permutation(len(test_images))[:eval_samples]]
    held_out = sets["train"][0][pick.permutation(len(sets["train"][0]))[:eval_samples]]
    ref_feats = _quality.classify(judge, reference)[1]

    cn.manual_seed(seed)
    generator, discriminator = gan_pair(model, latent_dim)
    if device != "cpu":
        generator.to(device)
        discriminator.to(device)
    floor = _quality.quality(judge, held_out, ref_feats)
    ceiling = _quality.quality(judge, generate(generator, eval_samples, latent_dim, seed + 4,
                                               device), ref_feats)
    history = train_gan(generator, discriminator, images, epochs, batch_size,
                        latent_dim=latent_dim, seed=seed, device=device, out=out,
                        progress=progress, log=log)
    samples = generate(generator, eval_samples, latent_dim, seed + 4, device)
    result = _quality.quality(judge, samples, ref_feats)
    final = save_grid(samples[:100], os.path.join(out, "samples_final.png"), nrow=10)

    log(f"{eval_samples} samples against {eval_samples} real test images:")
    log(f"  trained {model:<6}      {_fmt(result)}")
    log(f"  untrained generator {_fmt(ceiling)}")
    log(f"  real held-out       {_fmt(floor)}")
    log(f"  predicted classes of the samples: {result['class_histogram']}")
    return {"model": model, "epochs": epochs, "batch_size": batch_size, "seed": seed,
            "n_train": int(len(images)), "source": sets["source"], "device": device,
            "latent_dim": latent_dim, "eval_samples": eval_samples,
            "quality": result, "untrained": ceiling, "real_held_out": floor,
            "classifier": judge_info, "history": history, "samples_final": final,
            "generator_parameters": generator.num_parameters(),
            "discriminator_parameters": discriminator.num_parameters()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(DEFAULTS), default="gan")
    epochs = ", ".join(f"{k} {v['epochs']}" for k, v in DEFAULTS.items())
    parser.add_argument("--epochs", type=int, default=None, help=f"default: {epochs}")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64")
    parser.add_argument("--data", default=None, help="Fashion-MNIST folder")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=None, help="folder for the PNGs (default MODEL_out)")
    parser.add_argument("--report", metavar="FILE.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first LIMIT training images only")
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--classifier", default=None,
                        help="quality classifier weights (trained and saved there if missing)")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for convnet's kernels (default: all cores)")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "limit", "eval_samples", "latent_dim"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "epochs" else 1):
            parser.error(f"--{name.replace('_', '-')}: must be positive, got {value}")
    if args.threads:
        cn.set_num_threads(args.threads)
    out = run(args.model, args.epochs, args.batch_size, args.data, args.device,
              args.out or f"{args.model}_out", args.seed, args.limit, args.eval_samples,
              args.classifier, latent_dim=args.latent_dim)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
