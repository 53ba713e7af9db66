"""The Transformer (Vaswani et al., 2017) behind the course's encoder/decoder interface.

Both halves are stacks of PyTorch's own layers (``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer``) in the pre-norm layout (``norm_first=True``: layer norm before
each sub-layer, one more at the end of each stack), which trains without a long warm-up.
Tensors stay in the library's layout, [len, batch, d_model].

The decoder keeps the interface of :class:`~seq2seq_lib.interface.DecoderBase`, so ``fit``, the
Trainer, greedy and beam search and the Translator use it unchanged. Its "hidden" is the
*prefix*: the target ids read so far, [steps, batch] (indexed by sentence on dim 1, like a GRU's
[n_layers, batch, hid], so beam search reorders it the same way). Each call appends its inputs
to the prefix and runs the layers over all of it under the causal mask, returning the states
of the new positions only: one step of decoding costs a pass over the whole prefix, the price
of a decoder without recurrence (a training step, in return, reads all positions at once).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .interface import DecoderBase, Encoded

__all__ = ["TransformerDecoder", "TransformerEncoder", "causal_mask", "cross_attention_maps",
           "sinusoidal_positions"]


def sinusoidal_positions(length: int, dim: int, device: torch.device | str | None = None
                         ) -> torch.Tensor:
    """The fixed position vectors of Vaswani et al.: [length, dim] (float32).

    Entry (pos, 2i) is ``sin(pos / 10000^(2i/dim))`` and (pos, 2i+1) the cosine of the same
    angle: each pair of dimensions turns at its own speed, from one turn per ~6 positions to
    one per ~60,000.
    """
    pos = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)  # [length, 1]
    rates = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device)
                      * (-math.log(10000.0) / dim))  # [ceil(dim / 2)]
    angles = pos * rates  # [length, ceil(dim / 2)]
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(angles)
    out[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return out


def causal_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[n, n] bool, True where position i must NOT see position j (j > i): PyTorch's convention
    for a boolean ``attn_mask`` in ``nn.MultiheadAttention`` (the opposite of
    ``scaled_dot_product_attention``'s, where True means "may attend")."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


class _Embed(nn.Module):
    """Token embedding times √d_model, plus the sinusoidal positions, then dropout."""

    def __init__(self, vocab_size: int, d_model: int, dropout: float, pad_id: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.scale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: [len, batch] → [len, batch, d_model]
        x = self.embedding(ids) * self.scale
        x = x + sinusoidal_positions(ids.shape[0], x.shape[-1], ids.device).unsqueeze(1)
        return self.dropout(x)


class TransformerEncoder(nn.Module):
    """Embedding + positions → ``n_layers`` pre-norm self-attention layers → layer norm.

    Padded source positions are masked as keys, so they change no real position's output;
    their own outputs are set to zero (as :class:`~seq2seq_lib.interface.Encoded` promises).
    """

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, ff_dim: int,
                 n_layers: int, dropout: float, pad_id: int = 1):
        super().__init__()
        self.pad_id = pad_id
        self.embed = _Embed(vocab_size, d_model, dropout, pad_id)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_dim, dropout, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model),
                                            enable_nested_tensor=False)
        self.out_dim = d_model

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor) -> Encoded:
        # src: [src_len, batch]; src_lens: [batch] (the padding is read from src itself)
        mask = (src != self.pad_id).t()  # [batch, src_len], True at real words
        outputs = self.layers(self.embed(src), src_key_padding_mask=~mask)  # [src_len, batch, d]
        outputs = outputs.masked_fill(~mask.t().unsqueeze(-1), 0.0)
        prefix = src.new_zeros((0, src.shape[1]))  # [0, batch]: the decoder has read nothing
        return Encoded(outputs, prefix, mask)


class TransformerDecoder(DecoderBase):
    """Embedding + positions → ``n_layers`` pre-norm layers (causal self-attention, attention
    over the encoder outputs, feed-forward) → layer norm → linear layer over the vocabulary.

    The output layer shares its weights with the embedding (Press & Wolf, 2017), as in the
    original Transformer. See the module docstring for what ``hidden`` holds.
    """

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, ff_dim: int,
                 n_layers: int, dropout: float, pad_id: int = 1):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = _Embed(vocab_size, d_model, dropout, pad_id)
        layer = nn.TransformerDecoderLayer(d_model, n_heads, ff_dim, dropout, norm_first=True)
        self.layers = nn.TransformerDecoder(layer, n_layers, norm=nn.LayerNorm(d_model))
        self.fc_out = nn.Linear(d_model, vocab_size)
        self.fc_out.weight = self.embed.embedding.weight

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded
                ) -> tuple[torch.Tensor, torch.Tensor, None]:
        """Read ``inputs`` after the prefix ``hidden``.

        :param inputs: [steps, batch] target ids (all of them in training, one when decoding).
        :param hidden: [past, batch] the ids read before (empty at the start).
        :param enc: encoder outputs [src_len, batch, d_model] and mask [batch, src_len].
        :return: states [steps, batch, d_model] of the new positions, the longer prefix
            [past + steps, batch], and None (no attention weights: see
            :func:`cross_attention_maps`).
        """
        prefix = torch.cat([hidden, inputs], dim=0)  # [past + steps, batch]
        n = prefix.shape[0]
        states = self.layers(self.embed(prefix), enc.outputs,
                             tgt_mask=causal_mask(n, prefix.device), tgt_is_causal=True,
                             memory_key_padding_mask=~enc.mask)  # [n, batch, d_model]
        return states[n - inputs.shape[0]:], prefix, None


@torch.no_grad()
def cross_attention_maps(model: nn.Module, src: torch.Tensor, src_lens: torch.Tensor,
                         trg_in: torch.Tensor) -> torch.Tensor:
    """Every decoder layer's attention over the source, head by head, teacher-forced.

    :param model: a :class:`~seq2seq_lib.models.Seq2Seq` with a :class:`TransformerDecoder`.
    :param src: [src_len, batch]; :param trg_in: [trg_len, batch] the target ids read in.
    :return: [n_layers, batch, n_heads, trg_len, src_len] weights (rows sum to 1, zero on
        padded source words). The layers are asked for their weights through hooks; what they
        compute is unchanged.
    """
    decoder = model.decoder
    if not isinstance(decoder, TransformerDecoder):
        raise TypeError(f"cross_attention_maps needs a TransformerDecoder, got "
                        f"{type(decoder).__name__}")
    found: list[torch.Tensor] = []

    def want_weights(module, args, kwargs):
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep(module, args, output):
        found.append(output[1])  # [batch, n_heads, trg_len, src_len]

    handles = []
    for layer in decoder.layers.layers:
        handles.append(layer.multihead_attn.register_forward_pre_hook(want_weights,
                                                                      with_kwargs=True))
        handles.append(layer.multihead_attn.register_forward_hook(keep))
    was_training = model.training
    model.eval()
    try:
        enc = model.encode(src, src_lens)
        decoder(trg_in, enc.hidden, enc)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return torch.stack(found).float()
