"""The GRU encoder-decoder of the lesson, with packed sequences and a fused teacher-forced path."""

from __future__ import annotations

import random

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .interface import DecoderBase, Encoded
from .recurrent import run_gru

__all__ = ["Decoder", "DecoderBase", "Encoded", "Encoder", "Seq2Seq", "count_parameters"]


class Encoder(nn.Module):
    """Embedding → dropout → (bi)GRU over packed sequences, so padding never reaches the state."""

    def __init__(self, vocab_size: int, emb_dim: int, hid_dim: int, n_layers: int,
                 dropout: float, bidirectional: bool = False, pad_id: int = 1):
        super().__init__()
        self.pad_id = pad_id
        self.n_layers = n_layers
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(emb_dim, hid_dim, n_layers, dropout=dropout if n_layers > 1 else 0.0,
                          bidirectional=bidirectional)
        # a bidirectional encoder has two final states per layer: merge them for the decoder
        self.bridge = nn.Linear(2 * hid_dim, hid_dim) if bidirectional else None
        self.out_dim = hid_dim * (2 if bidirectional else 1)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor) -> Encoded:
        # src: [src_len, batch]; src_lens: [batch]
        embedded = self.dropout(self.embedding(src))  # [src_len, batch, emb_dim]
        packed = pack_padded_sequence(embedded, src_lens.cpu(), enforce_sorted=False)
        packed_out, hidden = run_gru(self.rnn, packed)  # hidden: [n_layers * dirs, batch, hid_dim]
        outputs, _ = pad_packed_sequence(packed_out, total_length=src.shape[0])
        if self.bridge is not None:
            hidden = hidden.view(self.n_layers, 2, *hidden.shape[1:])  # [n_layers, 2, batch, hid]
            hidden = torch.tanh(self.bridge(torch.cat([hidden[:, 0], hidden[:, 1]], dim=-1)))
        mask = (src != self.pad_id).t()  # [batch, src_len]
        return Encoded(outputs, hidden, mask)


class Decoder(DecoderBase):
    """Embedding → dropout → GRU → linear layer over the target vocabulary.

    :meth:`forward` reads any number of target steps in one GRU call; the logits come from
    :meth:`project`, so training can project only the non-pad positions.
    """

    def __init__(self, vocab_size: int, emb_dim: int, hid_dim: int, n_layers: int,
                 dropout: float, pad_id: int = 1):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(emb_dim, hid_dim, n_layers, dropout=dropout if n_layers > 1 else 0.0)
        self.fc_out = nn.Linear(hid_dim, vocab_size)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Run the decoder over ``inputs``.

        :param inputs: [steps, batch] target ids fed in (teacher forcing) or chosen so far.
        :param hidden: [n_layers, batch, hid_dim].
        :return: states [steps, batch, hid_dim], new hidden, and attention (None here).
        """
        embedded = self.dropout(self.embedding(inputs))  # [steps, batch, emb_dim]
        states, hidden = run_gru(self.rnn, embedded, hidden)  # states: [steps, batch, hid_dim]
        return states, hidden, None


class Seq2Seq(nn.Module):
    """Encoder + decoder. ``logits[t]`` is the prediction for ``trg[t + 1]``."""

    def __init__(self, encoder: Encoder, decoder: DecoderBase):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> Encoded:
        return self.encoder(src, src_lens)

    def decode_states(self, enc: Encoded, trg_in: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced pass: feed all of ``trg_in`` [steps, batch] at once.

        :return: states [steps, batch, hid] and attention [steps, batch, src_len] or None.
        """
        states, _, attn = self.decoder(trg_in, enc.hidden, enc)
        return states, attn

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, trg: torch.Tensor,
                teacher_forcing_ratio: float = 1.0, fused: bool | None = None,
                pad_id: int | None = None, project: bool = True,
                trg_index: torch.Tensor | None = None) -> torch.Tensor:
        """Score a target sentence: everything the loss needs, in one call.

        The training step calls the model only through this method (never its parts), so a
        wrapped model (``DistributedDataParallel``) trains unchanged.

        :param src: [src_len, batch]; :param src_lens: [batch]; :param trg: [trg_len, batch].
        :param teacher_forcing_ratio: probability of feeding the true previous word at a step.
        :param fused: force (True) or forbid (False) the one-call path; by default it is used
            exactly when ``teacher_forcing_ratio >= 1``.
        :param pad_id: return only the rows the loss scores: the positions where ``trg[1:]`` is
            not ``pad_id``, in the order of ``trg[1:][trg[1:] != pad_id]``. On the fused path
            only those states are projected onto the vocabulary (the largest matrix product).
        :param project: False: return the decoder states before the output layer instead of
            the logits (the fused path only), so the loss can project them a chunk at a time
            (:func:`~seq2seq_lib.loss.chunked_cross_entropy`).
        :param trg_index: the same rows given as positions in ``trg[1:].flatten()`` ([n_tokens]
            int64, ``Batch.trg_index``, found on the CPU): used instead of ``pad_id``'s mask, so
            that the device does not turn a mask into positions (a wait on CUDA).
        :return: logits [trg_len - 1, batch, trg_vocab], row t predicting ``trg[t + 1]``; with
            ``pad_id``, logits [n_tokens, trg_vocab] of the real target words; with
            ``project=False``, states [..., hid] in place of the logits.
        """
        enc = self.encode(src, src_lens)
        if fused is None:
            fused = teacher_forcing_ratio >= 1.0
        mask = trg[1:] != pad_id if pad_id is not None and trg_index is None else None
        if not (fused or project):
            raise ValueError("project=False needs the fused path (teacher_forcing_ratio >= 1)")
        if fused:
            states, _ = self.decode_states(enc, trg[:-1])  # [trg_len - 1, batch, hid]
            states = _real_rows(states, mask, trg_index)  # [n_tokens, hid] with pad_id
            return self.decoder.project(states) if project else states
        hidden = enc.hidden
        inp = trg[0]  # [batch], all <sos>
        steps = []
        for t in range(trg.shape[0] - 1):
            state, hidden, _ = self.decoder(inp.unsqueeze(0), hidden, enc)
            logits = self.decoder.project(state[0])  # [batch, trg_vocab]
            steps.append(logits)
            teacher = random.random() < teacher_forcing_ratio
            inp = trg[t + 1] if teacher else logits.argmax(-1)
        logits = torch.stack(steps)  # [trg_len - 1, batch, trg_vocab]
        return _real_rows(logits, mask, trg_index)


def _real_rows(x: torch.Tensor, mask: torch.Tensor | None, index: torch.Tensor | None
               ) -> torch.Tensor:
    """``x`` [trg_len - 1, batch, d] as it is, or only its rows the loss scores: [n_tokens, d]
    (by positions in the flattened first two dimensions, or by a mask)."""
    if index is not None:
        return x.flatten(0, 1).index_select(0, index)
    return x if mask is None else x[mask]


def count_parameters(model: nn.Module) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, count) for every trainable parameter, in registration order."""
    return [(n, tuple(p.shape), p.numel()) for n, p in model.named_parameters() if p.requires_grad]
