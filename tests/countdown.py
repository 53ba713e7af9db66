"""A hand-set model for decoding tests whose sentences end where their sources say.

Sentence ``b`` is meant to say about ``n_b`` words, ``n_b`` being its number of real source
words (``<sos>``/``<eos>`` not counted): before that ``<eos>`` is unlikely, after it likely. The
other words' log-probabilities depend on the whole prefix (through a running sum kept in the
state), so beams differ and scores hardly ever tie; the "attention" depends on the step, the
prefix and the source mask. So a batch of sources of different lengths finishes at very
different steps, and a source longer than ``max_len`` is cut there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from seq2seq_lib import Encoded
from seq2seq_lib.vocab import Vocab

EOS, A, B = Vocab.eos_id, 4, 5
VOCAB = 6
# words asked of a batch's outputs: from 0 to 20, so with max_len 14 the sentences finish at
# many different steps, and the one asking for 20 is cut at max_len
WANTED = (1, 12, 3, 0, 6, 20, 2, 9)


class CountdownDecoder(nn.Module):
    """State [1, batch, 3]: (steps read, words wanted, running sum of the prefix)."""

    has_attention = True

    def forward(self, inputs, hidden, enc):
        # inputs: [1, batch]; hidden: [1, batch, 3]
        steps, wanted, acc = hidden.unbind(-1)  # [1, batch] each
        acc = 0.7 * acc + inputs.float()  # the prefix, summed with decaying weights
        hidden = torch.stack([steps + 1, wanted, acc], dim=-1)
        pos = torch.arange(enc.mask.shape[1], dtype=torch.float32)  # [src_len]
        scores = torch.sin(acc.unsqueeze(-1) * 0.3 + steps.unsqueeze(-1) * pos)  # [1, b, src]
        attn = scores.masked_fill(~enc.mask.unsqueeze(0), float("-inf")).softmax(-1)
        return hidden, hidden, attn  # states: [1, batch, 3]

    def project(self, states):
        steps, wanted, acc = states.unbind(-1)  # [...] each
        over = steps > wanted  # past the wanted length: <eos> becomes likely
        logits = torch.full((*states.shape[:-1], VOCAB), float("-inf"))
        logits[..., A] = 1.0 + torch.sin(acc)
        logits[..., B] = 0.5 + torch.cos(1.3 * acc)
        logits[..., EOS] = torch.where(over, 2.5, -1.5) + 0.1 * torch.sin(2.1 * acc)
        return logits.log_softmax(-1)  # [..., VOCAB]


class CountdownModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.decoder = CountdownDecoder()

    def encode(self, src, src_lens):
        batch = src.shape[1]
        wanted = (src_lens - 2).float()  # [batch]
        hidden = torch.stack([torch.zeros(batch), wanted, torch.zeros(batch)], -1).unsqueeze(0)
        return Encoded(torch.zeros(src.shape[0], batch, 1), hidden, (src != Vocab.pad_id).t())


@contextmanager
def decoder_batches(model) -> Iterator[list[int]]:
    """The batch size of every decoder call made inside the block."""
    sizes: list[int] = []
    handle = model.decoder.register_forward_pre_hook(
        lambda module, args: sizes.append(args[0].shape[1]))
    try:
        yield sizes
    finally:
        handle.remove()


def sources(lengths):
    """[src_len, batch] sources of ``lengths`` real words each (padded), and their lengths."""
    from seq2seq_lib import collate

    examples = [(torch.tensor([Vocab.sos_id, *([7] * n), Vocab.eos_id]),
                 torch.tensor([Vocab.sos_id])) for n in lengths]
    b = collate(examples)
    return b.src, b.src_lens


class RowFirst:
    """A decoder state that is not a tensor with the row on dim 1: rows on dim 0 of ``t``."""

    def __init__(self, t: torch.Tensor):
        self.t = t  # [batch, 3]


class RowFirstDecoder(CountdownDecoder):
    """The countdown decoder keeping its state as :class:`RowFirst`, with its own ``reorder``
    (the plug-in point of :func:`seq2seq_lib.interface.reorder_hidden`)."""

    def __init__(self):
        super().__init__()
        self.reorders = 0

    def forward(self, inputs, hidden, enc):
        # the start state comes from Encoded ([1, batch, 3]); later ones are RowFirst
        start = hidden if isinstance(hidden, torch.Tensor) else hidden.t.unsqueeze(0)
        states, hidden, attn = super().forward(inputs, start, enc)
        return states, RowFirst(hidden[0]), attn

    def reorder(self, hidden: RowFirst, index: torch.Tensor) -> RowFirst:
        self.reorders += 1
        return RowFirst(hidden.t.index_select(0, index))


class RowFirstModel(CountdownModel):
    def __init__(self):
        super().__init__()
        self.decoder = RowFirstDecoder()
