"""A GRU encoder-decoder with Bahdanau attention in the idiom of the PyTorch tutorial
"NLP From Scratch: Translation with a Sequence to Sequence Network and Attention":
batch-first GRUs, additive attention with bmm, teacher forcing, greedy decoding with
topk, log_softmax + NLLLoss over the flattened outputs."""

from types import SimpleNamespace

import numpy as np

SOS_token, EOS_token = 0, 1
MAX_LENGTH, VOCAB_IN, VOCAB_OUT, HIDDEN = 6, 13, 11, 10


def build(torch, F):
    nn, optim = torch.nn, torch.optim
    utils_data = torch.utils.data

    class EncoderRNN(nn.Module):
        def __init__(self, input_size, hidden_size, dropout_p=0.1):
            super().__init__()
            self.hidden_size = hidden_size
            self.embedding = nn.Embedding(input_size, hidden_size)
            self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
            self.dropout = nn.Dropout(dropout_p)

        def forward(self, input):
            embedded = self.dropout(self.embedding(input))
            output, hidden = self.gru(embedded)
            return output, hidden

    class BahdanauAttention(nn.Module):
        def __init__(self, hidden_size):
            super().__init__()
            self.Wa = nn.Linear(hidden_size, hidden_size)
            self.Ua = nn.Linear(hidden_size, hidden_size)
            self.Va = nn.Linear(hidden_size, 1)

        def forward(self, query, keys):
            scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
            scores = scores.squeeze(2).unsqueeze(1)
            weights = F.softmax(scores, dim=-1)
            context = torch.bmm(weights, keys)
            return context, weights

    class AttnDecoderRNN(nn.Module):
        def __init__(self, hidden_size, output_size, dropout_p=0.1):
            super().__init__()
            self.embedding = nn.Embedding(output_size, hidden_size)
            self.attention = BahdanauAttention(hidden_size)
            self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
            self.out = nn.Linear(hidden_size, output_size)
            self.dropout = nn.Dropout(dropout_p)

        def forward(self, encoder_outputs, encoder_hidden, target_tensor=None):
            batch_size = encoder_outputs.size(0)
            decoder_input = torch.empty(batch_size, 1, dtype=torch.long).fill_(SOS_token)
            decoder_hidden = encoder_hidden
            decoder_outputs = []
            attentions = []

            for i in range(MAX_LENGTH):
                decoder_output, decoder_hidden, attn_weights = self.forward_step(
                    decoder_input, decoder_hidden, encoder_outputs)
                decoder_outputs.append(decoder_output)
                attentions.append(attn_weights)

                if target_tensor is not None:
                    # Teacher forcing: Feed the target as the next input
                    decoder_input = target_tensor[:, i].unsqueeze(1)
                else:
                    _, topi = decoder_output.topk(1)
                    decoder_input = topi.squeeze(-1).detach()

            decoder_outputs = torch.cat(decoder_outputs, dim=1)
            decoder_outputs = F.log_softmax(decoder_outputs, dim=-1)
            attentions = torch.cat(attentions, dim=1)
            return decoder_outputs, decoder_hidden, attentions

        def forward_step(self, input, hidden, encoder_outputs):
            embedded = self.dropout(self.embedding(input))
            query = hidden.permute(1, 0, 2)
            context, attn_weights = self.attention(query, encoder_outputs)
            input_gru = torch.cat((embedded, context), dim=2)
            output, hidden = self.gru(input_gru, hidden)
            output = self.out(output)
            return output, hidden, attn_weights

    def pairs(n=12, seed=0):
        rng = np.random.default_rng(seed)
        inputs = rng.integers(2, VOCAB_IN, (n, MAX_LENGTH))
        targets = rng.integers(2, VOCAB_OUT, (n, MAX_LENGTH))
        targets[:, -1] = EOS_token
        # the tutorial writes torch.LongTensor(...): see test_programs for that gap
        return torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long)

    def models():
        return EncoderRNN(VOCAB_IN, HIDDEN), AttnDecoderRNN(HIDDEN, VOCAB_OUT)

    criterion = nn.NLLLoss()

    def loss(models_, batch):
        encoder, decoder = models_
        input_tensor, target_tensor = batch
        encoder_outputs, encoder_hidden = encoder(input_tensor)
        decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden, target_tensor)
        return criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)),
                         target_tensor.view(-1))

    def train_epoch(dataloader, encoder, decoder, encoder_optimizer, decoder_optimizer):
        total_loss = 0
        for data in dataloader:
            input_tensor, target_tensor = data
            encoder_optimizer.zero_grad()
            decoder_optimizer.zero_grad()
            encoder_outputs, encoder_hidden = encoder(input_tensor)
            decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden, target_tensor)
            loss = criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)),
                             target_tensor.view(-1))
            loss.backward()
            encoder_optimizer.step()
            decoder_optimizer.step()
            total_loss += loss.item()
        return total_loss / len(dataloader)

    def evaluate(encoder, decoder, input_tensor):
        with torch.no_grad():
            encoder_outputs, encoder_hidden = encoder(input_tensor)
            decoder_outputs, _, attn = decoder(encoder_outputs, encoder_hidden)
            _, topi = decoder_outputs.topk(1)
            return topi.squeeze(), attn

    def main(epochs=2):
        torch.manual_seed(1)
        train_data = utils_data.TensorDataset(*pairs())
        loader = utils_data.DataLoader(train_data, batch_size=4, shuffle=True)
        encoder, decoder = models()
        encoder_optimizer = optim.Adam(encoder.parameters(), lr=1e-3)
        decoder_optimizer = optim.Adam(decoder.parameters(), lr=1e-3)
        history = [train_epoch(loader, encoder, decoder, encoder_optimizer, decoder_optimizer)
                   for _ in range(epochs)]
        encoder.eval()
        decoder.eval()
        decoded, attn = evaluate(encoder, decoder, pairs(2, 5)[0])
        assert decoded.shape == (2, MAX_LENGTH) and attn.shape == (2, MAX_LENGTH, MAX_LENGTH)
        return history

    return SimpleNamespace(model=models, loss=loss, batch=lambda: pairs(3, 4), main=main,
                           compare_in_eval=True)
