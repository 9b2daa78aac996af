"""A CNN classifier in the idiom of pytorch/examples' MNIST: two convolutions, max pooling,
dropout, log_softmax + nll_loss, Adadelta stepped down by StepLR, a DataLoader."""

from types import SimpleNamespace

import numpy as np


def build(torch, F):
    nn, optim = torch.nn, torch.optim
    from_loader = torch.utils.data

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, 1)
            self.conv2 = nn.Conv2d(8, 16, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(16 * 5 * 5, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.dropout2(x)
            x = self.fc2(x)
            output = F.log_softmax(x, dim=1)
            return output

    def dataset(n=64, seed=0):
        rng = np.random.default_rng(seed)
        images = torch.tensor(rng.standard_normal((n, 1, 14, 14)).astype(np.float32))
        labels = torch.tensor(rng.integers(0, 10, n))
        return from_loader.TensorDataset(images, labels)

    def loss_fn(model, batch):
        data, target = batch
        output = model(data)
        return F.nll_loss(output, target)

    def train_epoch(model, loader, optimizer, log_interval=2):
        model.train()
        losses = []
        for batch_idx, (data, target) in enumerate(loader):
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            if batch_idx % log_interval == 0:
                losses.append(loss.item())
        return losses

    def test(model, loader):
        model.eval()
        test_loss = 0
        correct = 0
        with torch.no_grad():
            for data, target in loader:
                output = model(data)
                test_loss += F.nll_loss(output, target, reduction="sum").item()
                pred = output.argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()
        return test_loss / len(loader.dataset), correct

    def main(epochs=2):
        torch.manual_seed(1)
        train_loader = from_loader.DataLoader(dataset(), batch_size=16, shuffle=True)
        test_loader = from_loader.DataLoader(dataset(32, seed=1), batch_size=16)
        model = Net()
        optimizer = optim.Adadelta(model.parameters(), lr=1.0)
        scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
        history = []
        for _ in range(epochs):
            history += train_epoch(model, train_loader, optimizer)
            test_loss, correct = test(model, test_loader)
            scheduler.step()
        return history, test_loss, correct, optimizer.param_groups[0]["lr"]

    def batch(seed=0):
        ds = dataset(8, seed)
        return ds.tensors

    return SimpleNamespace(model=Net, loss=loss_fn, batch=batch, main=main,
                           compare_in_eval=True)
