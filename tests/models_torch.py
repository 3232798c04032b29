"""Hand-written PyTorch models for the cross-validation suite (no torchvision).

Each entry of :data:`SUITE` is (name, factory, per-sample input shape with names, the
sizes to check, batch_dim, input dtype).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet5(nn.Module):
    """The notes' LeNet-5 on 1×32×32."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class VGGish(nn.Module):
    """Two VGG stages of 3×3 convolutions (padding 1), max-pooling, a global average and a classifier."""

    def __init__(self, c=3, widths=(16, 32), classes=10):
        super().__init__()
        layers = []
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True),
                       nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetish(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2), BasicBlock(32, 32))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class ConvAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


class LSTMLanguageModel(nn.Module):
    def __init__(self, vocab=100, emb=32, hidden=48, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.head(self.drop(out))


class GRUTagger(nn.Module):
    """A bidirectional GRU tagger on a time-major input (batch at dim 1)."""

    def __init__(self, vocab=50, emb=16, hidden=24, tags=7):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.gru = nn.GRU(emb, hidden, bidirectional=True)
        self.out = nn.Linear(2 * hidden, tags)

    def forward(self, tokens):
        h, _ = self.gru(self.embed(tokens))
        return F.softmax(self.out(h), dim=-1)


class TransformerEncoderNet(nn.Module):
    def __init__(self, d_in=24, d_model=32, nhead=4, ff=64, layers=2, classes=5, norm_first=False):
        super().__init__()
        self.proj = nn.Linear(d_in, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, ff, dropout=0.1, batch_first=True,
                                           norm_first=norm_first, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x):
        return self.head(self.encoder(self.proj(x)))


class CausalSelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.qkv(x).chunk(3, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class GPTBlock(nn.Module):
    def __init__(self, d, heads, use_mha=False):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.use_mha = use_mha
        if use_mha:
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        else:
            self.attn = CausalSelfAttention(d, heads)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask=None):
        h = self.ln1(x)
        if self.use_mha:
            h, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)
        else:
            h = self.attn(h)
        x = x + h
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A GPT-style decoder: token + learned positional embeddings, causal blocks, tied head."""

    def __init__(self, vocab=64, d=32, heads=4, layers=2, max_len=64, use_mha=False):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.use_mha = use_mha
        self.blocks = nn.ModuleList(GPTBlock(d, heads, use_mha) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight
        self.register_buffer("causal", torch.triu(torch.ones(max_len, max_len), diagonal=1).bool(), persistent=False)

    def forward(self, idx):
        T = idx.size(1)
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        mask = self.causal[:T, :T] if self.use_mha else None
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))


#: name -> (factory, per-sample input shape, list of size assignments to check, batch_dim, dtype)
SUITE = {
    "lenet5": (LeNet5, (1, 32, 32), [{}], 0, torch.float32),
    "vgg": (VGGish, (3, "M", "N"), [{"M": 16, "N": 16}, {"M": 20, "N": 12}, {"M": 32, "N": 24}], 0, torch.float32),
    "resnet": (ResNetish, (3, "M", "N"), [{"M": 16, "N": 16}, {"M": 15, "N": 9}, {"M": 32, "N": 32}], 0, torch.float32),
    "autoencoder": (ConvAutoencoder, (1, "M", "N"), [{"M": 16, "N": 16}, {"M": 28, "N": 28}, {"M": 32, "N": 8}], 0,
                    torch.float32),
    "lstm_lm": (LSTMLanguageModel, ("T",), [{"T": 5}, {"T": 12}, {"T": 33}], 0, torch.long),
    "gru_tagger": (GRUTagger, ("T",), [{"T": 4}, {"T": 9}, {"T": 20}], 1, torch.long),
    "transformer": (TransformerEncoderNet, ("T", 24), [{"T": 6}, {"T": 11}, {"T": 32}], 0, torch.float32),
    "transformer_prenorm": (lambda: TransformerEncoderNet(norm_first=True), ("T", 24), [{"T": 7}, {"T": 16}], 0,
                            torch.float32),
    "gpt": (GPT, ("T",), [{"T": 8}, {"T": 13}, {"T": 40}], 0, torch.long),
    "gpt_mha": (lambda: GPT(use_mha=True), ("T",), [{"T": 8}, {"T": 21}], 0, torch.long),
}
