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
    ``hidden``: what the decoder starts from, indexed by sentence on dim 1 (decoding picks
    rows with :func:`reorder_hidden`): the GRUs' context vector [n_layers, batch, hid_dim];
    for the Transformer an empty [0, batch] that its decoder grows step by step;
    ``mask``: [batch, src_len], True at real (non-pad) source positions;
    ``cache``: values a decoder computes once per source batch and reuses at every step
    (the attention decoder keeps its projected keys here), each indexed by sentence on dim 0.
    """

    outputs: torch.Tensor
    hidden: torch.Tensor
    mask: torch.Tensor
    cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    def select(self, index: torch.Tensor) -> Encoded:
        """The rows ``index`` [n] (long) of every field, in that order (repeats allowed): what
        beam search uses to copy a sentence once per beam, and to drop finished sentences."""
        return Encoded(self.outputs.index_select(1, index),  # [src_len, n, enc_dim]
                       self.hidden.index_select(1, index),  # [.., n, ..]
                       self.mask.index_select(0, index),  # [n, src_len]
                       {key: value.index_select(0, index) for key, value in self.cache.items()})


def reorder_hidden(decoder: nn.Module, hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The decoder state of the rows ``index`` [n] (long), in that order (repeats allowed).

    Decoding goes through this one function whenever it reorders or drops rows (beam search
    follows its parent pointers, and both searches drop finished sentences). A decoder whose
    state is not one tensor indexed by row on dim 1 (as [n_layers, batch, hid] is) defines
    ``reorder(hidden, index)``, which is then called instead.
    """
    reorder = getattr(decoder, "reorder", None)
    if reorder is not None:
        return reorder(hidden, index)
    return hidden.index_select(1, index)


class DecoderBase(nn.Module):
    """The interface of a decoder: ``forward`` reads target words, ``project`` scores them.

    A subclass sets ``fc_out`` (hidden size → target vocabulary) and implements
    ``forward(inputs [steps, batch], hidden, enc: Encoded)`` returning (states [steps, batch,
    hid], new hidden, attention [steps, batch, src_len] or None); ``hidden`` as in
    :class:`Encoded` ([n_layers, batch, hid] for a GRU).
    ``has_attention`` says whether the third item is ever set. A decoder whose ``hidden`` is
    not one tensor with the row on dim 1 also defines ``reorder(hidden, index)`` (see
    :func:`reorder_hidden`).
    """

    has_attention = False
    fc_out: nn.Linear

    def project(self, states: torch.Tensor) -> torch.Tensor:
        """Logits over the target vocabulary: [..., hid_dim] → [..., vocab_size]."""
        return self.fc_out(states)
