"""A variational autoencoder in the idiom of pytorch/examples' VAE: fc encoder to mu and
log-variance, the reparameterisation trick with randn_like, BCE + KL loss summed, Adam."""

from types import SimpleNamespace

import numpy as np


def build(torch, F):
    nn, optim = torch.nn, torch.optim
    utils_data = torch.utils.data

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 32)
            self.fc21 = nn.Linear(32, 6)
            self.fc22 = nn.Linear(32, 6)
            self.fc3 = nn.Linear(6, 32)
            self.fc4 = nn.Linear(32, 64)

        def encode(self, x):
            h1 = F.relu(self.fc1(x))
            return self.fc21(h1), self.fc22(h1)

        def reparameterize(self, mu, logvar):
            if not self.training:
                return mu
            std = torch.exp(0.5 * logvar)
            eps = torch.randn_like(std)
            return mu + eps * std

        def decode(self, z):
            h3 = F.relu(self.fc3(z))
            return torch.sigmoid(self.fc4(h3))

        def forward(self, x):
            mu, logvar = self.encode(x.view(-1, 64))
            z = self.reparameterize(mu, logvar)
            return self.decode(z), mu, logvar

    def loss_function(recon_x, x, mu, logvar):
        BCE = F.binary_cross_entropy(recon_x, x.view(-1, 64), reduction="sum")
        KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return BCE + KLD

    def images(n, seed=0):
        rng = np.random.default_rng(seed)
        return torch.from_numpy(rng.uniform(0, 1, (n, 1, 8, 8)).astype(np.float32))

    def loss(model, data):
        recon_batch, mu, logvar = model(data)
        return loss_function(recon_batch, data, mu, logvar)

    def main(epochs=2):
        torch.manual_seed(1)
        loader = utils_data.DataLoader(utils_data.TensorDataset(images(40)), batch_size=8,
                                       shuffle=True)
        model = VAE()
        optimizer = optim.Adam(model.parameters(), lr=1e-3)
        history = []
        for _ in range(epochs):
            model.train()
            train_loss = 0
            for (data,) in loader:
                optimizer.zero_grad()
                recon_batch, mu, logvar = model(data)
                loss = loss_function(recon_batch, data, mu, logvar)
                loss.backward()
                train_loss += loss.item()
                optimizer.step()
            history.append(train_loss / len(loader.dataset))
        model.eval()
        with torch.no_grad():
            sample = torch.randn(4, 6)
            sample = model.decode(sample).cpu()
        assert sample.view(4, 1, 8, 8).shape == (4, 1, 8, 8)
        return history

    return SimpleNamespace(model=VAE, loss=loss, batch=lambda: images(6, 3), main=main,
                           compare_in_eval=True)
