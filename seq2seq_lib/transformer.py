"""The Transformer (Vaswani et al., 2017) behind the course's encoder/decoder interface.

Both halves are stacks of PyTorch's own layers (``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer``) in the pre-norm layout (``norm_first=True``: layer norm before
each sub-layer, one more at the end of each stack), which trains without a long warm-up.
Tensors stay in the library's layout, [len, batch, d_model].

The decoder keeps the interface of :class:`~seq2seq_lib.interface.DecoderBase`, so ``fit``, the
Trainer, greedy and beam search and the Translator use it unchanged. Its "hidden" is what it
has read so far: for every past position, the input of every layer, [past, batch, n_layers,
d_model] (indexed by sentence on dim 1, like a GRU's [n_layers, batch, hid], so beam search
reorders it the same way; empty, [0, batch], before the first word). A call computes only its
new positions, layer by layer: their queries attend to the past layer inputs (a cache from
which each layer's keys and values are recomputed) and to themselves under the causal mask.
Teacher forcing reads all positions in one call, exactly as ``nn.TransformerDecoderLayer``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .interface import DecoderBase, Encoded

__all__ = ["TransformerDecoder", "TransformerEncoder", "causal_mask", "cross_attention_maps",
           "decoder_layer", "sinusoidal_positions"]


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

    def forward(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        # ids: [len, batch] at positions start, start + 1, ... → [len, batch, d_model]
        x = self.embedding(ids) * self.scale
        pe = sinusoidal_positions(start + ids.shape[0], x.shape[-1], ids.device)[start:]
        return self.dropout(x + pe.unsqueeze(1))


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
        nothing = outputs.new_zeros((0, src.shape[1]))  # [0, batch]: the decoder read nothing
        return Encoded(outputs, nothing, mask)


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
        """Read ``inputs`` after the positions ``hidden`` holds.

        :param inputs: [steps, batch] target ids (all of them in training, one when decoding).
        :param hidden: [past, batch, n_layers, d_model] every layer's inputs at the positions
            read before ([0, batch] at the start).
        :param enc: encoder outputs [src_len, batch, d_model] and mask [batch, src_len].
        :return: states [steps, batch, d_model] of the new positions, hidden grown to
            [past + steps, batch, n_layers, d_model], and None (no attention weights: see
            :func:`cross_attention_maps`).
        """
        past = hidden.shape[0]
        x = self.embed(inputs, start=past)  # [steps, batch, d_model]
        inputs_per_layer = []
        for i, layer in enumerate(self.layers.layers):
            inputs_per_layer.append(x)
            seen = x if past == 0 else torch.cat([hidden[:, :, i].to(x.dtype), x])
            x = decoder_layer(layer, x, seen, enc)
        new = torch.stack(inputs_per_layer, dim=2)  # [steps, batch, n_layers, d_model]
        hidden = new if past == 0 else torch.cat([hidden, new.to(hidden.dtype)])
        return self.layers.norm(x), hidden, None


def decoder_layer(layer: nn.TransformerDecoderLayer, x: torch.Tensor, seen: torch.Tensor,
                  enc: Encoded) -> torch.Tensor:
    """One pre-norm ``nn.TransformerDecoderLayer`` (its own sub-modules, in its order) for the
    last ``len(x)`` of the positions ``seen``; on all of them it equals ``layer(...)`` with the
    causal mask.

    :param x: [n, batch, d] this layer's input at the new positions.
    :param seen: [past + n, batch, d] its input at every position so far (``x`` at the end).
    """
    n, total = x.shape[0], seen.shape[0]
    hide = torch.ones(n, total, dtype=torch.bool, device=x.device).triu(total - n + 1)
    h = layer.norm1(seen)  # keys and values: every position so far; queries: the new ones
    x = x + layer.dropout1(layer.self_attn(h[total - n:], h, h, attn_mask=hide,
                                           need_weights=False)[0])
    x = x + layer.dropout2(layer.multihead_attn(layer.norm2(x), enc.outputs, enc.outputs,
                                                key_padding_mask=~enc.mask,
                                                need_weights=False)[0])
    ff = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm3(x)))))
    return x + layer.dropout3(ff)


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
