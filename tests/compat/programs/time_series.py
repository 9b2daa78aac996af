"""Time-sequence prediction in the idiom of pytorch/examples' time_sequence_prediction:
two stacked LSTMCells unrolled over input.split(1, dim=1), a linear read-out, future steps
fed back, float64 throughout, MSELoss minimised by LBFGS with a closure."""

from types import SimpleNamespace

import numpy as np

HIDDEN = 11


def build(torch, F):
    nn, optim = torch.nn, torch.optim

    class Sequence(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm1 = nn.LSTMCell(1, HIDDEN)
            self.lstm2 = nn.LSTMCell(HIDDEN, HIDDEN)
            self.linear = nn.Linear(HIDDEN, 1)

        def forward(self, input, future=0):
            outputs = []
            h_t = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)
            c_t = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)
            h_t2 = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)
            c_t2 = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)

            for input_t in input.split(1, dim=1):
                h_t, c_t = self.lstm1(input_t, (h_t, c_t))
                h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
                output = self.linear(h_t2)
                outputs += [output]
            for _ in range(future):  # if we should predict the future
                h_t, c_t = self.lstm1(output, (h_t, c_t))
                h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
                output = self.linear(h_t2)
                outputs += [output]
            outputs = torch.cat(outputs, dim=1)
            return outputs

    def sine_waves(n=6, length=20, seed=2):
        rng = np.random.default_rng(seed)
        x = np.arange(length) + rng.integers(-8, 8, (n, 1))
        return torch.from_numpy(np.sin(x / 3.0).astype("float64"))

    def model():
        return Sequence().double()

    def loss(seq, data):
        criterion = nn.MSELoss()
        input, target = data[:3, :-1], data[:3, 1:]
        return criterion(seq(input), target)

    def main(steps=2):
        torch.manual_seed(0)
        data = sine_waves()
        input = data[3:, :-1]
        target = data[3:, 1:]
        test_input = data[:3, :-1]
        test_target = data[:3, 1:]
        seq = Sequence()
        seq.double()
        criterion = nn.MSELoss()
        optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=4)
        history = []
        for _ in range(steps):
            def closure():
                optimizer.zero_grad()
                out = seq(input)
                loss = criterion(out, target)
                loss.backward()
                return loss

            history.append(optimizer.step(closure).item())
            with torch.no_grad():
                future = 5
                pred = seq(test_input, future=future)
                loss = criterion(pred[:, :-future], test_target)
                y = pred.detach().numpy()
            assert y.shape == (3, 19 + future) and np.isfinite(loss.item())
        return history

    return SimpleNamespace(model=model, loss=loss, batch=sine_waves, main=main)
