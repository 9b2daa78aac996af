"""A word-level language model in the idiom of pytorch/examples' word_language_model:
embedding, multi-layer LSTM with dropout, a decoder tied to the embedding weights,
batchify/get_batch over a token stream, hidden state detached between batches, gradient
clipping, and the hand-written SGD update on p.data."""

from types import SimpleNamespace

import numpy as np

NTOKENS, NINP, NLAYERS, BPTT = 23, 12, 2, 5


def build(torch, F):
    nn = torch.nn

    class RNNModel(nn.Module):
        def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
            super().__init__()
            self.ntoken = ntoken
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
            self.decoder = nn.Linear(nhid, ntoken)
            if tie_weights:
                if nhid != ninp:
                    raise ValueError("When using the tied flag, nhid must be equal to emsize")
                self.decoder.weight = self.encoder.weight
            self.init_weights()
            self.nhid = nhid
            self.nlayers = nlayers

        def init_weights(self):
            initrange = 0.1
            nn.init.uniform_(self.encoder.weight, -initrange, initrange)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -initrange, initrange)

        def forward(self, input, hidden):
            emb = self.drop(self.encoder(input))
            output, hidden = self.rnn(emb, hidden)
            output = self.drop(output)
            decoded = self.decoder(output)
            decoded = decoded.view(-1, self.ntoken)
            return F.log_softmax(decoded, dim=1), hidden

        def init_hidden(self, bsz):
            weight = next(self.parameters())
            return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                    weight.new_zeros(self.nlayers, bsz, self.nhid))

    def batchify(data, bsz):
        nbatch = data.size(0) // bsz
        data = data.narrow(0, 0, nbatch * bsz)
        data = data.view(bsz, -1).t().contiguous()
        return data

    def get_batch(source, i):
        seq_len = min(BPTT, len(source) - 1 - i)
        data = source[i:i + seq_len]
        target = source[i + 1:i + 1 + seq_len].view(-1)
        return data, target

    def repackage_hidden(h):
        if isinstance(h, torch.Tensor):
            return h.detach()
        return tuple(repackage_hidden(v) for v in h)

    def corpus(n=83, seed=0):
        rng = np.random.default_rng(seed)
        return torch.tensor(rng.integers(0, NTOKENS, n), dtype=torch.long)

    def model():
        return RNNModel(NTOKENS, NINP, NINP, NLAYERS, dropout=0.2, tie_weights=True)

    def loss(m, batch):
        data, targets = get_batch(batchify(batch, 4), 0)
        output, _ = m(data, m.init_hidden(4))
        return nn.NLLLoss()(output, targets)

    def main(lr=5.0, clip=0.25):
        torch.manual_seed(1)
        train_data = batchify(corpus(), 4)
        m = model()
        assert m.decoder.weight is m.encoder.weight
        criterion = nn.NLLLoss()
        m.train()
        hidden = m.init_hidden(4)
        history = []
        for _batch, i in enumerate(range(0, train_data.size(0) - 1, BPTT)):
            data, targets = get_batch(train_data, i)
            m.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = m(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
            for p in m.parameters():
                p.data.add_(p.grad, alpha=-lr)
            history.append(loss.item())
        assert m.decoder.weight is m.encoder.weight  # still tied after the updates
        return history

    return SimpleNamespace(model=model, loss=loss, batch=corpus, main=main,
                           compare_in_eval=True)
