"""Attention over the source words, and a GRU decoder that uses it.

The decoder follows Luong et al. (2015): the GRU reads the target words first, then every
decoder state looks at all encoder outputs. Because attention comes *after* the GRU, the
teacher-forced pass stays one GRU call plus one batched attention, exactly like the plain
:class:`~seq2seq_lib.models.Decoder`. Three score functions are offered:

* ``"bahdanau"``: additive, ``v·tanh(W_q q + W_k k)`` (Bahdanau et al., 2015);
* ``"dot"``: ``q·k`` (Luong), needs ``enc_dim == hid_dim`` (a unidirectional encoder);
* ``"general"``: ``q·W k`` (Luong), any sizes.

Note: ``"bahdanau"`` names the *score function*. Bahdanau's original decoder also fed the
context into the GRU input, which forces a step-by-step loop in training; we keep the faster
Luong-style layout for every kind.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .interface import DecoderBase, Encoded
from .recurrent import run_gru

ATTENTION_KINDS = ("bahdanau", "dot", "general")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where padded positions get exactly zero weight.

    :param scores: [batch, steps, src_len]; :param mask: [batch, src_len], True at real words.
    """
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))  # [batch, steps, src_len]
    return torch.softmax(scores.float(), dim=-1).to(scores.dtype)


class AdditiveAttention(nn.Module):
    """Bahdanau's additive score ``v · tanh(W_q q + W_k k)`` followed by a masked softmax.

    The sum ``W_q q + W_k k`` holds one vector per (target step, source word) pair:
    [batch, steps, src_len, attn_dim], about 1 GB in fp32 at batch 128, lengths 62, dim 512.
    So both projections are computed once, and :meth:`scores` adds them a chunk of target steps
    at a time, at most ``max_chunk_elements`` numbers per chunk; when it takes more than one
    chunk in training, each chunk is recomputed in the backward pass instead of being kept
    (activation checkpointing). The values are those of the one-piece computation.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int,
                 max_chunk_elements: int = 2**24):
        super().__init__()
        self.w_query = nn.Linear(query_dim, attn_dim, bias=False)
        self.w_key = nn.Linear(key_dim, attn_dim, bias=True)
        self.v = nn.Linear(attn_dim, 1, bias=False)
        self.max_chunk_elements = max_chunk_elements  # 2**24 numbers: 64 MB in fp32

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """The part of the score that depends on the keys only, computed once per source batch:
        [batch, src_len, key_dim] → [batch, src_len, attn_dim]."""
        return self.w_key(keys)

    def scores(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        """:param query: [batch, steps, query_dim]; :param prepared: :meth:`prepare`'s result.

        :return: [batch, steps, src_len] unnormalised scores.
        """
        q = self.w_query(query)  # [batch, steps, attn_dim], every step projected at once
        batch, steps, attn_dim = q.shape
        per_step = batch * prepared.shape[1] * attn_dim  # numbers in one step's sum
        chunk = max(1, self.max_chunk_elements // max(per_step, 1))  # target steps per chunk
        if chunk >= steps:
            return self.score_chunk(q, prepared)
        recompute = torch.is_grad_enabled() and (q.requires_grad or prepared.requires_grad)
        parts = []
        for start in range(0, steps, chunk):
            q_part = q[:, start : start + chunk]  # [batch, chunk, attn_dim]
            parts.append(checkpoint(self.score_chunk, q_part, prepared, use_reentrant=False,
                                    preserve_rng_state=False) if recompute
                         else self.score_chunk(q_part, prepared))
        return torch.cat(parts, dim=1)  # [batch, steps, src_len]

    def score_chunk(self, q: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        """Scores of projected queries [batch, chunk, attn_dim] → [batch, chunk, src_len]."""
        summed = q.unsqueeze(2) + prepared.unsqueeze(1)  # [batch, chunk, src_len, attn_dim]
        return self.v(torch.tanh(summed)).squeeze(-1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                prepared: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights [batch, steps, src_len] and context [batch, steps, key_dim].

        :param keys: [batch, src_len, key_dim]; :param mask: [batch, src_len].
        :param prepared: ``prepare(keys)`` when already computed.
        """
        prepared = self.prepare(keys) if prepared is None else prepared
        weights = masked_softmax(self.scores(query, prepared), mask)
        return weights, torch.bmm(weights, keys)


class LuongAttention(nn.Module):
    """Luong's multiplicative scores: ``"dot"`` (``q·k``) or ``"general"`` (``q·W k``)."""

    def __init__(self, query_dim: int, key_dim: int, kind: str = "general"):
        super().__init__()
        if kind not in ("dot", "general"):
            raise ValueError(f"LuongAttention kind must be 'dot' or 'general', got {kind!r}")
        if kind == "dot" and query_dim != key_dim:
            raise ValueError(
                f"'dot' attention needs encoder outputs of the decoder's size ({query_dim}), but "
                f"they have {key_dim} (a bidirectional encoder doubles them): use 'general' "
                "or 'bahdanau', or a unidirectional encoder")
        self.kind = kind
        # W maps a key into the query space: score = q · (W k)
        self.w = nn.Linear(key_dim, query_dim, bias=False) if kind == "general" else None

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """Nothing to precompute: the keys themselves [batch, src_len, key_dim]."""
        return keys

    def scores(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        """:param query: [batch, steps, query_dim]; :param prepared: keys [batch, src_len, key_dim].

        :return: [batch, steps, src_len] unnormalised scores.
        """
        if self.w is not None:
            # q · (W k) = (q W) · k: transform the few queries instead of all the keys
            query = query @ self.w.weight  # [batch, steps, key_dim]
        return torch.bmm(query, prepared.transpose(1, 2))  # [batch, steps, src_len]

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                prepared: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights [batch, steps, src_len] and context [batch, steps, key_dim].

        :param keys: [batch, src_len, key_dim]; :param mask: [batch, src_len].
        :param prepared: unused (the keys need no precomputing); accepted for a common interface.
        """
        weights = masked_softmax(self.scores(query, keys), mask)
        return weights, torch.bmm(weights, keys)


def make_attention(kind: str, query_dim: int, key_dim: int) -> nn.Module:
    """The attention module for ``kind`` (one of :data:`ATTENTION_KINDS`)."""
    if kind == "bahdanau":
        return AdditiveAttention(query_dim, key_dim, attn_dim=query_dim)
    if kind in ("dot", "general"):
        return LuongAttention(query_dim, key_dim, kind)
    raise ValueError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTION_KINDS)}")


class AttentionDecoder(DecoderBase):
    """Embedding → dropout → GRU → attention over the encoder outputs → combine → linear.

    Each GRU state ``h`` [hid] reads the encoder outputs and gets a context ``c`` [enc_dim];
    the "attentional state" ``tanh(W_c [c; h])`` [hid] (with dropout while training) is what
    :meth:`project` turns into logits. Same interface as :class:`~seq2seq_lib.models.Decoder`
    (:class:`~seq2seq_lib.interface.DecoderBase`), so training and decoding code work with either.
    """

    has_attention = True

    def __init__(self, vocab_size: int, emb_dim: int, hid_dim: int, n_layers: int,
                 dropout: float, enc_dim: int, kind: str = "bahdanau", pad_id: int = 1):
        super().__init__()
        self.vocab_size = vocab_size
        self.kind = kind
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(emb_dim, hid_dim, n_layers, dropout=dropout if n_layers > 1 else 0.0)
        self.attention = make_attention(kind, hid_dim, enc_dim)
        self.combine = nn.Linear(enc_dim + hid_dim, hid_dim)
        self.fc_out = nn.Linear(hid_dim, vocab_size)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the decoder over ``inputs`` (all steps at once, or one step at a time).

        :param inputs: [steps, batch] target ids fed in (teacher forcing) or chosen so far.
        :param hidden: [n_layers, batch, hid_dim].
        :param enc: encoder outputs [src_len, batch, enc_dim] and mask [batch, src_len].
        :return: attentional states [steps, batch, hid_dim], new hidden, and attention
            weights [steps, batch, src_len] (zero on padding, rows sum to 1).
        """
        embedded = self.dropout(self.embedding(inputs))  # [steps, batch, emb_dim]
        states, hidden = run_gru(self.rnn, embedded, hidden)  # states: [steps, batch, hid_dim]
        query = states.transpose(0, 1)  # [batch, steps, hid_dim]
        keys = enc.outputs.transpose(0, 1)  # [batch, src_len, enc_dim]
        cache_key = f"attention-keys-{id(self)}"  # computed once per source batch, reused per step
        if cache_key not in enc.cache:
            enc.cache[cache_key] = self.attention.prepare(keys)
        weights, context = self.attention(query, keys, enc.mask, enc.cache[cache_key])
        # weights: [batch, steps, src_len]; context: [batch, steps, enc_dim]
        combined = torch.tanh(self.combine(torch.cat([context, query], dim=-1)))  # [b, steps, hid]
        out = self.dropout(combined).transpose(0, 1)  # [steps, batch, hid_dim]
        return out, hidden, weights.transpose(0, 1)  # attention: [steps, batch, src_len]
