"""Batch normalisation written from scratch in the idiom of d2l.ai (chapter "Batch
Normalization"): a batch_norm function switching on torch.is_grad_enabled(), moving
statistics kept as plain tensors on the module (returned through .data), nn.Parameter
scale and shift, used in a sigmoid LeNet trained with SGD."""

from types import SimpleNamespace

import numpy as np


def build(torch, F):
    nn = torch.nn

    def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
        # Use is_grad_enabled to determine whether we are in training mode
        if not torch.is_grad_enabled():
            # In prediction mode, use mean and variance obtained by moving average
            X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
        else:
            assert len(X.shape) in (2, 4)
            if len(X.shape) == 2:
                # When using a fully connected layer, calculate the mean and
                # variance on the feature dimension
                mean = X.mean(dim=0)
                var = ((X - mean) ** 2).mean(dim=0)
            else:
                # When using a two-dimensional convolutional layer, calculate the
                # mean and variance on the channel dimension (axis=1)
                mean = X.mean(dim=(0, 2, 3), keepdim=True)
                var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
            X_hat = (X - mean) / torch.sqrt(var + eps)
            moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
            moving_var = (1.0 - momentum) * moving_var + momentum * var
        Y = gamma * X_hat + beta  # Scale and shift
        return Y, moving_mean.data, moving_var.data

    class BatchNorm(nn.Module):
        def __init__(self, num_features, num_dims):
            super().__init__()
            if num_dims == 2:
                shape = (1, num_features)
            else:
                shape = (1, num_features, 1, 1)
            self.gamma = nn.Parameter(torch.ones(shape))
            self.beta = nn.Parameter(torch.zeros(shape))
            self.moving_mean = torch.zeros(shape)
            self.moving_var = torch.ones(shape)

        def forward(self, X):
            if self.moving_mean.device != X.device:
                self.moving_mean = self.moving_mean.to(X.device)
                self.moving_var = self.moving_var.to(X.device)
            Y, self.moving_mean, self.moving_var = batch_norm(
                X, self.gamma, self.beta, self.moving_mean,
                self.moving_var, eps=1e-5, momentum=0.1)
            return Y

    def net():
        return nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5), BatchNorm(6, num_dims=4), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), BatchNorm(16, num_dims=4), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
            nn.Linear(16 * 4 * 4, 30), BatchNorm(30, num_dims=2), nn.Sigmoid(),
            nn.Linear(30, 10))

    def fashion_like(n=32, seed=0):
        rng = np.random.default_rng(seed)
        X = torch.tensor(rng.uniform(0, 1, (n, 1, 28, 28)).astype(np.float32))
        y = torch.tensor(rng.integers(0, 10, n))
        return X, y

    def loss(model, batch):
        X, y = batch
        return nn.CrossEntropyLoss()(model(X), y)

    def accuracy(y_hat, y):
        y_hat = y_hat.argmax(axis=1)
        cmp = y_hat.type(y.dtype) == y
        return float(cmp.type(y.dtype).sum())

    def main(epochs=2, lr=0.9):
        torch.manual_seed(0)
        model = net()

        def init_weights(m):
            if type(m) is nn.Linear or type(m) is nn.Conv2d:
                nn.init.xavier_uniform_(m.weight)

        model.apply(init_weights)
        train_iter = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(*fashion_like()), batch_size=8, shuffle=True)
        trainer = torch.optim.SGD(model.parameters(), lr=lr)
        criterion = nn.CrossEntropyLoss(reduction="none")
        history = []
        for _ in range(epochs):
            model.train()
            for X, y in train_iter:
                trainer.zero_grad()
                y_hat = model(X)
                l = criterion(y_hat, y)  # noqa: E741 (d2l's name)
                l.mean().backward()
                trainer.step()
                with torch.no_grad():
                    history.append(float(l.mean()))
                    accuracy(y_hat, y)
        bn = model[1]
        assert bn.moving_mean.shape == (1, 6, 1, 1) and not bn.moving_mean.requires_grad
        model.eval()
        with torch.no_grad():  # prediction mode: the moving statistics
            assert model(fashion_like(4, 1)[0]).shape == (4, 10)
        return history

    return SimpleNamespace(model=net, loss=loss, batch=lambda: fashion_like(6, 2), main=main)
