"""A DCGAN training step in the idiom of pytorch/examples' dcgan: transposed-convolution
generator, strided-convolution discriminator with LeakyReLU(0.2, inplace=True), weights
initialised through Module.apply, BCELoss on labels filled in place, two Adams."""

from types import SimpleNamespace

import numpy as np

nz, ngf, ndf, nc = 8, 8, 8, 1


def build(torch, F):
    nn, optim = torch.nn, torch.optim

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find("Conv") != -1:
            torch.nn.init.normal_(m.weight, 0.0, 0.02)
        elif classname.find("BatchNorm") != -1:
            torch.nn.init.normal_(m.weight, 1.0, 0.02)
            torch.nn.init.zeros_(m.bias)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 2),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
                nn.Tanh(),
            )

        def forward(self, input):
            return self.main(input)

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
                nn.Sigmoid(),
            )

        def forward(self, input):
            output = self.main(input)
            return output.view(-1, 1).squeeze(1)

    def models():
        netG = Generator()
        netG.apply(weights_init)
        netD = Discriminator()
        netD.apply(weights_init)
        return netG, netD

    def batch(seed=0, b=6):
        rng = np.random.default_rng(seed)
        real = torch.tensor(rng.uniform(-1, 1, (b, nc, 16, 16)).astype(np.float32))
        noise = torch.tensor(rng.standard_normal((b, nz, 1, 1)).astype(np.float32))
        return real, noise

    criterion = nn.BCELoss()
    real_label, fake_label = 1.0, 0.0

    def d_and_g_losses(netG, netD, real_cpu, noise):
        """The discriminator's loss on real and fake, then the generator's: one iteration
        of the DCGAN loop with one backward at the end (so each loss has its own label
        tensor: BCE keeps its target for the backward pass)."""
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        fake = netG(noise)
        fake_labels = torch.full((batch_size,), fake_label, dtype=real_cpu.dtype)
        output = netD(fake.detach())
        errD_fake = criterion(output, fake_labels)
        output = netD(fake)
        errG = criterion(output, label)
        return errD_real + errD_fake + errG

    def loss(models_, batch_):
        netG, netD = models_
        return d_and_g_losses(netG, netD, *batch_)

    def main(iters=3):
        torch.manual_seed(1)
        netG, netD = models()
        optimizerD = optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        optimizerG = optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        history = []
        for i in range(iters):
            real_cpu, _ = batch(i)
            batch_size = real_cpu.size(0)
            netD.zero_grad()
            label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype)
            output = netD(real_cpu)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(batch_size, nz, 1, 1)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            errD = errD_real + errD_fake
            optimizerD.step()

            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            history += [errD.item(), errG.item()]
            assert 0 < D_x < 1 and 0 < D_G_z2 < 1
        return history

    return SimpleNamespace(model=models, loss=loss, batch=batch, main=main)
