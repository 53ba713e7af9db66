"""The Transformer (Vaswani et al., 2017) behind the course's encoder/decoder interface.

Both halves are stacks of PyTorch's own layers (``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer``) in the pre-norm layout (``norm_first=True``: layer norm before
each sub-layer, one more at the end of each stack), which trains without a long warm-up.
Tensors stay in the library's layout, [len, batch, d_model]. Dropout sits where Vaswani et al.
put it: on the embeddings plus positions and on each sub-layer's output before it joins the
residual stream (plus PyTorch's own on the attention weights), and not between the two layers of
the feed-forward part, where ``nn.Transformer*Layer`` has one more (fairseq leaves it off by
default too): the feed-forward's hidden layer is 4 times wider than the rest, so its masks were
the largest share of the dropout's cost. The dropout layers are the library's
:class:`~seq2seq_lib.dropout.Dropout` (cheap masks on the CPU).

The decoder keeps the interface of :class:`~seq2seq_lib.interface.DecoderBase`, so ``fit``, the
Trainer, greedy and beam search and the Translator use it unchanged. Its "hidden" is a cache of
keys and values: for every past position, every layer's self-attention keys and values, one
tensor [2 * n_layers, batch, n_heads, past, head_dim] (rows 2i and 2i + 1 of dim 0 are layer
i's keys and values; indexed by sentence on dim 1, like a GRU's [n_layers, batch, hid], so beam
search reorders it with ``index_select(1, ...)`` as it does a GRU's; the encoder's empty
[0, batch] before the first word). Every call computes only its new positions (all of them
with an empty cache: teacher forcing, or the first decoding step), whose queries attend to the
cached keys and values and their own under the causal mask, with the layer's own weights and
``F.scaled_dot_product_attention``; the keys and values it returns are the ones its attention
used, so the cache costs no extra work, and nothing of the past is recomputed.
:func:`decoder_layer` is the same layer as ``nn.TransformerDecoderLayer``'s own sub-modules
compute it; the tests check that the two agree. The keys and values of the encoder outputs are
computed once per source batch and kept in ``enc.cache``, as the attention decoder keeps its
projected keys there (indexed by sentence on dim 0, so selecting rows of ``enc`` and of the
cache together keeps them right).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .dropout import Dropout, use_fast_dropout
from .interface import DecoderBase, Encoded

__all__ = ["TransformerDecoder", "TransformerEncoder", "cached_decoder_layer", "causal_mask",
           "cross_attention_maps", "decoder_layer", "sinusoidal_positions"]


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
        self.dropout = Dropout(dropout)

    def forward(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        # ids: [len, batch] at positions start, start + 1, ... → [len, batch, d_model]
        x = self.embedding(ids) * self.scale
        pe = sinusoidal_positions(start + ids.shape[0], x.shape[-1], ids.device)[start:]
        return self.dropout(x + pe.unsqueeze(1))


def _without_ff_dropout(layer: nn.Module) -> nn.Module:
    """``layer`` (an ``nn.Transformer*Layer``) without the dropout inside its feed-forward part
    (its ``dropout``, between ``linear1`` and ``linear2``); see the module docstring."""
    layer.dropout = nn.Identity()
    return layer


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
        layer = _without_ff_dropout(use_fast_dropout(nn.TransformerEncoderLayer(
            d_model, n_heads, ff_dim, dropout, norm_first=True)))
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
        layer = _without_ff_dropout(use_fast_dropout(nn.TransformerDecoderLayer(
            d_model, n_heads, ff_dim, dropout, norm_first=True)))
        self.layers = nn.TransformerDecoder(layer, n_layers, norm=nn.LayerNorm(d_model))
        self.fc_out = nn.Linear(d_model, vocab_size)
        self.fc_out.weight = self.embed.embedding.weight

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded
                ) -> tuple[torch.Tensor, torch.Tensor, None]:
        """Read ``inputs`` after the positions whose keys and values ``hidden`` holds.

        :param inputs: [steps, batch] target ids (all of them in training, one when decoding).
        :param hidden: [2 * n_layers, batch, n_heads, past, head_dim] every layer's keys and
            values at the positions read before ([0, batch] at the start).
        :param enc: encoder outputs [src_len, batch, d_model] and mask [batch, src_len].
        :return: states [steps, batch, d_model] of the new positions, the cache grown to
            [2 * n_layers, batch, n_heads, past + steps, head_dim], and None (no attention
            weights: see :func:`cross_attention_maps`).
        """
        past = hidden.shape[3] if hidden.dim() == 5 else 0
        if past == 0 and hidden.numel() != 0:
            raise ValueError(f"hidden must be a key/value cache [2 * n_layers, batch, n_heads, "
                             f"past, head_dim] or empty, got shape {tuple(hidden.shape)}")
        x = self.embed(inputs, start=past)  # [steps, batch, d_model]
        cross = self._cross_keys_values(enc)
        caches = []
        for i, layer in enumerate(self.layers.layers):
            # with an empty cache (teacher forcing, the first step) every position is new
            x, kv = cached_decoder_layer(layer, x, hidden[2 * i : 2 * i + 2] if past else None,
                                          cross[i], enc.mask)
            caches.append(kv)
        return self.layers.norm(x), torch.cat(caches), None

    def _cross_keys_values(self, enc: Encoded) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's keys and values of the encoder outputs, [batch, n_heads, src_len,
        head_dim] each, computed once per source batch and kept in ``enc.cache`` (one entry per
        layer and kind, [batch, n_heads, src_len, head_dim], indexed by sentence on dim 0 as
        every entry there is, so selecting rows of ``enc`` selects them too)."""
        key = f"transformer-cross-{id(self)}"
        if f"{key}-k0" not in enc.cache:
            for i, layer in enumerate(self.layers.layers):
                k, v = _keys_values(layer.multihead_attn, enc.outputs)
                enc.cache[f"{key}-k{i}"], enc.cache[f"{key}-v{i}"] = k, v
        return [(enc.cache[f"{key}-k{i}"], enc.cache[f"{key}-v{i}"])
                for i in range(len(self.layers.layers))]


def _split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[len, batch, d] → [batch, n_heads, len, d / n_heads]."""
    n, b, d = x.shape
    return x.view(n, b, n_heads, d // n_heads).permute(1, 2, 0, 3)


def _keys_values(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """The keys and values ``attn`` computes from ``x`` [len, batch, d] (as its own forward
    does): [2, batch, n_heads, len, head_dim]."""
    d = attn.embed_dim
    bias = None if attn.in_proj_bias is None else attn.in_proj_bias[d:]
    k, v = F.linear(x, attn.in_proj_weight[d:], bias).chunk(2, dim=-1)  # 2 × [len, batch, d]
    return torch.stack([_split_heads(k, attn.num_heads), _split_heads(v, attn.num_heads)])


def _attend(attn: nn.MultiheadAttention, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            mask: torch.Tensor | None) -> torch.Tensor:
    """``attn`` with queries from ``x`` [n, batch, d] over the keys ``k`` and values ``v``
    [batch, n_heads, len, head_dim] each; ``mask`` [batch or 1, 1, n or 1, len] True where a
    query may look (or None: everywhere). → [n, batch, d]"""
    n, b, d = x.shape
    bias = None if attn.in_proj_bias is None else attn.in_proj_bias[:d]
    q = _split_heads(F.linear(x, attn.in_proj_weight[:d], bias), attn.num_heads)
    out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask,
                                         dropout_p=attn.dropout if attn.training else 0.0)
    out = out.permute(2, 0, 1, 3).reshape(n, b, d)  # [n, batch, d]
    return attn.out_proj(out)


def cached_decoder_layer(layer: nn.TransformerDecoderLayer, x: torch.Tensor,
                          past: torch.Tensor | None, cross: tuple[torch.Tensor, torch.Tensor],
                          src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One pre-norm decoder layer for ``len(x)`` new positions after the cached ones: what
    :func:`decoder_layer` computes for them, without recomputing anything of the past. The
    keys and values of the new positions are the ones its self-attention uses: returning them
    costs no extra product (teacher forcing runs this with no past).

    :param x: [n, batch, d] this layer's input at the new positions.
    :param past: [2, batch, n_heads, past, head_dim] its self-attention keys and values so far,
        or None (no position before these).
    :param cross: its keys and values of the encoder outputs, [batch, n_heads, src_len,
        head_dim] each; :param src_mask: [batch, src_len], True at real source words.
    :return: the layer's output [n, batch, d] and the keys and values grown by the new
        positions, [2, batch, n_heads, past + n, head_dim].
    """
    n = x.shape[0]
    done = 0 if past is None else past.shape[3]
    h = layer.norm1(x)
    new = _keys_values(layer.self_attn, h)
    kv = new if past is None else torch.cat([past, new.to(past.dtype)], dim=3)
    see = None  # one new position sees everything so far; several, the causal mask
    if n > 1:
        see = torch.ones(n, done + n, dtype=torch.bool, device=x.device).tril(done)
    x = x + layer.dropout1(_attend(layer.self_attn, h, kv[0], kv[1], see))
    x = x + layer.dropout2(_attend(layer.multihead_attn, layer.norm2(x), *cross,
                                   src_mask[:, None, None, :]))
    ff = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm3(x)))))
    return x + layer.dropout3(ff), kv


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
        padded source words). The pass goes through :func:`decoder_layer` (the layers' own
        ``nn.MultiheadAttention`` modules), which are asked for their weights through hooks;
        what they compute is unchanged.
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
        x = decoder.embed(trg_in)  # [trg_len, batch, d_model]
        for layer in decoder.layers.layers:  # torch's own sub-modules, which the hooks see
            x = decoder_layer(layer, x, x, enc)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return torch.stack(found).float()
