"""A hand-set model for decoding tests: the next word depends on the previous word only."""

from __future__ import annotations

import math

import torch
from torch import nn

from seq2seq_lib import Encoded
from seq2seq_lib.vocab import Vocab

EOS, A, B = Vocab.eos_id, 4, 5


class MarkovDecoder(nn.Module):
    """A hand-set decoder: the next word's probabilities depend on the previous word only.

    Its "state" is the previous word's id, and :meth:`project` looks up log-probabilities in
    the table ``log_probs`` [vocab, vocab] (row = previous word). Words missing from a row
    are impossible; a previous word without a row is always followed by ``<eos>``.
    """

    has_attention = False

    def __init__(self, probs: dict[int, dict[int, float]], vocab_size: int = 6):
        super().__init__()
        table = torch.full((vocab_size, vocab_size), float("-inf"))
        for prev in range(vocab_size):
            for word, p in probs.get(prev, {EOS: 1.0}).items():
                table[prev, word] = math.log(p)
        self.log_probs = nn.Parameter(table, requires_grad=False)

    def forward(self, inputs, hidden, enc):
        return inputs.unsqueeze(-1).float(), hidden, None  # states: [steps, batch, 1]

    def project(self, states):
        return self.log_probs[states.squeeze(-1).long()]  # [..., vocab]


class MarkovModel(nn.Module):
    def __init__(self, probs):
        super().__init__()
        self.decoder = MarkovDecoder(probs)

    def encode(self, src, src_lens):
        batch = src.shape[1]
        return Encoded(torch.zeros(src.shape[0], batch, 1), torch.zeros(1, batch, 1),
                       (src != Vocab.pad_id).t())
