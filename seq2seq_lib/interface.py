"""What an encoder hands a decoder, and what every decoder offers.

The plain GRU decoder (:mod:`~seq2seq_lib.models`) and the attention decoder
(:mod:`~seq2seq_lib.attention`) both build on this module and on nothing of each other, so
training and decoding code work with either; :mod:`~seq2seq_lib.builders` is the one place that
knows them both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Encoded:
    """What the encoder hands to the decoder.

    ``outputs``: [src_len, batch, enc_dim] (zero at padded positions);
    ``hidden``: [n_layers, batch, hid_dim], the context vector the decoder starts from;
    ``mask``: [batch, src_len], True at real (non-pad) source positions;
    ``cache``: values a decoder computes once per source batch and reuses at every step
    (the attention decoder keeps its projected keys here).
    """

    outputs: torch.Tensor
    hidden: torch.Tensor
    mask: torch.Tensor
    cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)


class DecoderBase(nn.Module):
    """The interface of a decoder: ``forward`` reads target words, ``project`` scores them.

    A subclass sets ``fc_out`` (hidden size → target vocabulary) and implements
    ``forward(inputs [steps, batch], hidden [n_layers, batch, hid], enc: Encoded)`` returning
    (states [steps, batch, hid], new hidden, attention [steps, batch, src_len] or None).
    ``has_attention`` says whether the third item is ever set.
    """

    has_attention = False
    fc_out: nn.Linear

    def project(self, states: torch.Tensor) -> torch.Tensor:
        """Logits over the target vocabulary: [..., hid_dim] → [..., vocab_size]."""
        return self.fc_out(states)
