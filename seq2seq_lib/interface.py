"""What an encoder hands a decoder, and what every decoder offers.

The plain GRU decoder (:mod:`~seq2seq_lib.models`), the attention decoder
(:mod:`~seq2seq_lib.attention`) and the Transformer (:mod:`~seq2seq_lib.transformer`) build on
this module and on nothing of each other, so training and decoding code work with any of them;
:mod:`~seq2seq_lib.builders` is the one place that knows them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Encoded:
    """What the encoder hands to the decoder.

    ``outputs``: [src_len, batch, enc_dim] (zero at padded positions);
    ``hidden``: what the decoder starts from, indexed by sentence on dim 1 (beam search
    reorders it with ``index_select(1, ...)``): the GRUs' context vector [n_layers, batch,
    hid_dim]; for the Transformer an empty [0, batch] that its decoder grows step by step;
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
    ``forward(inputs [steps, batch], hidden, enc: Encoded)`` returning (states [steps, batch,
    hid], new hidden, attention [steps, batch, src_len] or None); ``hidden`` as in
    :class:`Encoded` ([n_layers, batch, hid] for a GRU).
    ``has_attention`` says whether the third item is ever set.
    """

    has_attention = False
    fc_out: nn.Linear

    def project(self, states: torch.Tensor) -> torch.Tensor:
        """Logits over the target vocabulary: [..., hid_dim] → [..., vocab_size]."""
        return self.fc_out(states)
