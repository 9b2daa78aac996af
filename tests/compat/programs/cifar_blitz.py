"""The 60-minute blitz CIFAR-10 classifier: the tutorial's Net (conv 5x5, max pool,
three linear layers), CrossEntropyLoss, SGD with momentum, a shuffled DataLoader with
worker processes, running loss, and accuracy with torch.max over outputs.data."""

from types import SimpleNamespace

import numpy as np


def build(torch, F):
    nn, optim = torch.nn, torch.optim

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)  # flatten all dimensions except batch
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x

    def cifar_like(n=16, seed=0):
        rng = np.random.default_rng(seed)
        images = torch.tensor(rng.uniform(-1, 1, (n, 3, 32, 32)).astype(np.float32))
        labels = torch.tensor(rng.integers(0, 10, n))
        return images, labels

    def loss(net, batch):
        inputs, labels = batch
        criterion = nn.CrossEntropyLoss()
        return criterion(net(inputs), labels)

    def main(epochs=2):
        torch.manual_seed(0)
        trainset = torch.utils.data.TensorDataset(*cifar_like())
        trainloader = torch.utils.data.DataLoader(trainset, batch_size=4, shuffle=True,
                                                  num_workers=2)
        testloader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(*cifar_like(8, 1)), batch_size=4, shuffle=False,
            num_workers=2)
        net = Net()
        criterion = nn.CrossEntropyLoss()
        optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
        history = []
        for _epoch in range(epochs):  # loop over the dataset multiple times
            running_loss = 0.0
            for i, data in enumerate(trainloader, 0):
                # get the inputs; data is a list of [inputs, labels]
                inputs, labels = data
                optimizer.zero_grad()
                outputs = net(inputs)
                loss = criterion(outputs, labels)
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
                if i % 2 == 1:
                    history.append(running_loss / 2)
                    running_loss = 0.0
        correct = 0
        total = 0
        with torch.no_grad():
            for data in testloader:
                images, labels = data
                outputs = net(images)
                _, predicted = torch.max(outputs.data, 1)
                total += labels.size(0)
                correct += (predicted == labels).sum().item()
        assert total == 8 and 0 <= correct <= 8
        return history

    return SimpleNamespace(model=Net, loss=loss, batch=lambda: cifar_like(5, 3), main=main)
