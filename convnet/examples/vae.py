"""Variational autoencoder on Fashion-MNIST: new images sampled from the prior, and the
latent space coloured by class.

    python -m convnet.examples.vae [--epochs 10] [--latent 2] [--batch-size 128]
        [--data DIR] [--device cpu|cuda] [--report FILE.json] [--samples FILE.png]
        [--latent-plot FILE.png]

Trains on every training image (no labels) by maximising the ELBO (Bernoulli decoder:
binary cross-entropy summed over the pixels, plus the KL divergence of q(z|x) from
N(0, I)); prints the test ELBO in nats per image (higher is better) with its two terms;
writes a grid of images decoded from z ~ N(0, I) and a scatter of the test images' latent
means coloured by class (the first two principal axes when ``--latent`` > 2).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import convnet as cn
from convnet.data import FASHION_MNIST_CLASSES
from convnet.examples.autoencoder import (
    _device_array,
    _pyplot,
    add_common_arguments,
    load_data,
    loader,
    save_image_rows,
    train,
    write_report,
)
from convnet.models.autoencoder import VariationalAutoencoder

LATENT_PLOT_PX = 600


def vae_loss(model, x):
    return model.loss(x)


def evaluate_elbo(model, test_loader, device="cpu"):
    """(ELBO, reconstruction term, KL term) in nats per image over a loader. The ELBO is
    estimated with one sample of z per image, as in training (train mode for the sampling,
    no graph, no parameter change)."""
    was = model.training
    model.train()
    total = recon = kl = count = 0.0
    with cn.no_grad():
        for x, _ in test_loader:
            if device != "cpu":
                x = x.to(device)
            loss, r, k = model.loss(x, return_parts=True)
            n = len(x)
            total += float(loss.item()) * n
            recon += r * n
            kl += k * n
            count += n
    model.train(was)
    return -total / count, recon / count, kl / count


def latent_means(model, images, device="cpu", batch=1000):
    model.eval()
    out = []
    with cn.no_grad():
        for i in range(0, len(images), batch):
            x = cn.tensor(images[i:i + batch, None].astype(np.float32) / 255)
            if device != "cpu":
                x = x.to(device)
            out.append(_device_array(model.encode(x)[0]))
    return np.concatenate(out)


def save_latent_plot(path, z, labels):
    """Scatter of 2-D codings (the first two principal axes of wider ones) by class, as a
    PNG of LATENT_PLOT_PX x LATENT_PLOT_PX pixels."""
    plt = _pyplot()
    axes_label = ("z1", "z2")
    if z.shape[1] > 2:
        zc = z - z.mean(axis=0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        z = zc @ vt[:2].T
        axes_label = ("principal axis 1", "principal axis 2")
    elif z.shape[1] == 1:
        z = np.concatenate([z, np.zeros_like(z)], axis=1)
    fig = plt.figure(figsize=(LATENT_PLOT_PX / 100, LATENT_PLOT_PX / 100), dpi=100)
    ax = fig.add_axes([0.1, 0.08, 0.62, 0.86])
    cmap = plt.get_cmap("tab10")
    for c in range(10):
        keep = labels == c
        ax.scatter(z[keep, 0], z[keep, 1], s=3, color=cmap(c), label=FASHION_MNIST_CLASSES[c],
                   alpha=0.6, rasterized=True)
    ax.set_xlabel(axes_label[0])
    ax.set_ylabel(axes_label[1])
    ax.set_title("VAE latent means of the test images")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=4, fontsize=8,
              frameon=False)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(epochs=10, batch_size=128, lr=1e-3, latent=2, data=None, device="cpu",
        samples="vae_samples.png", latent_plot="vae_latent.png", limit=None, seed=0,
        progress=True, log=print) -> dict:
    cn.manual_seed(seed)
    (xtr, ytr), (xte, yte), source = load_data(data, limit, seed)
    log(f"{source}: {len(xtr)} training images (labels unused), {len(xte)} test images")
    model = VariationalAutoencoder(latent=latent)
    if device != "cpu":
        model.to(device)
    test_loader = loader(xte, yte, 500)

    def metrics(m):
        elbo, recon, kl = evaluate_elbo(m, test_loader, device)
        return {"test_elbo": elbo, "test_reconstruction": recon, "test_kl": kl}

    t0 = time.perf_counter()
    history = train(model, loader(xtr, ytr, batch_size, shuffle=True, seed=seed), epochs,
                    loss_fn=vae_loss, lr=lr, device=device, progress=progress, log=log,
                    evaluate_fn=metrics, name="vae")
    elbo, recon, kl = (history["test_elbo"][-1], history["test_reconstruction"][-1],
                       history["test_kl"][-1]) if epochs else evaluate_elbo(model, test_loader,
                                                                          device)
    result = {"model": "vae", "latent": latent, "epochs": epochs, "batch_size": batch_size,
              "parameters": sum(p.numel() for p in model.parameters()),
              "train_images": len(xtr), "test_images": len(xte), "source": source,
              "device": device, "seconds": time.perf_counter() - t0, "test_elbo": elbo,
              "test_negative_elbo": -elbo, "test_reconstruction": recon, "test_kl": kl,
              "history": history}
    log(f"VAE ({latent}-D latent): test ELBO {elbo:.2f} nats per image (reconstruction "
        f"{recon:.2f} + KL {kl:.2f} = negative ELBO {-elbo:.2f}), {result['seconds']:.0f}s")
    if samples:
        model.eval()
        with cn.no_grad():
            imgs = _device_array(model.sample(64))
        save_image_rows(samples, [imgs[i * 8:(i + 1) * 8] for i in range(8)])
        result["samples"] = str(samples)
        log(f"wrote {samples} (64 images decoded from z ~ N(0, I))")
    if latent_plot:
        save_latent_plot(latent_plot, latent_means(model, xte, device), yte)
        result["latent_plot"] = str(latent_plot)
        log(f"wrote {latent_plot}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, epochs=10, batch_size=128)
    parser.add_argument("--latent", type=int, default=2, help="latent dimensions")
    parser.add_argument("--samples", "--out", dest="samples", metavar="FILE.png",
                        default="vae_samples.png")
    parser.add_argument("--latent-plot", metavar="FILE.png", default="vae_latent.png")
    args = parser.parse_args(argv)
    result = run(args.epochs, args.batch_size, args.lr, args.latent, args.data, args.device,
                 args.samples, args.latent_plot, args.limit, args.seed,
                 progress=not args.no_progress)
    write_report(args.report, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
