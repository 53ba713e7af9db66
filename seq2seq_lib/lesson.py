"""The original lesson's two data/training mistakes, rebuilt on purpose for teaching.

Nothing in the library uses these; notebooks 02 and 05 and the tests show what they break.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import torch
from torch import nn

from .batching import Batch
from .models import Seq2Seq
from .vocab import SPECIALS, Vocab


def lesson_build_vocab(tokenized: Iterable[list[str]], max_size: int, min_freq: int) -> dict[str, int]:
    """The lesson's vocabulary: ids follow first appearance *before* filtering, and ``max_size``
    is never applied, so ids have gaps and can exceed the embedding's row count."""
    counts = Counter(tok for sent in tokenized for tok in sent)
    vocab = {}
    for position, (tok, freq) in enumerate(counts.items()):  # position counts filtered words too
        if freq >= min_freq:
            vocab[tok] = position + len(SPECIALS)
    vocab.update({tok: i for i, tok in enumerate(SPECIALS)})
    return vocab  # max_size: accepted, ignored


def lesson_shifted_loss(model: Seq2Seq, batch: Batch, teacher_forcing_ratio: float = 1.0,
                        pad_id: int = Vocab.pad_id) -> tuple[torch.Tensor, int]:
    """The lesson's misaligned loss, same signature as :func:`seq2seq_lib.train.batch_loss`.

    The lesson feeds ``trg[:-1]`` to a model whose first output row is all zeros, then scores the
    rows against ``trg[1:]``: the row fed word t is graded against word t + 2, so the model is
    trained to skip a word, and row 0 (zeros) is a constant penalty.
    """
    target = batch.trg[1:]  # [trg_len - 1, batch]
    enc = model.encode(batch.src, batch.src_lens)
    states, _ = model.decode_states(enc, batch.trg[:-2])  # fed trg[0..T-3]
    logits = model.decoder.project(states)  # [trg_len - 2, batch, vocab]
    zeros = torch.zeros_like(logits[:1])  # the lesson's untouched outputs[0]
    logits = torch.cat([zeros, logits])  # [trg_len - 1, batch, vocab]
    loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.flatten(),
                                       ignore_index=pad_id)
    return loss, int((target != pad_id).sum())
