"""``build_model``: the one place that knows every encoder and decoder of the course."""

from __future__ import annotations

from .attention import AttentionDecoder
from .config import ModelConfig
from .interface import DecoderBase
from .models import Decoder, Encoder, Seq2Seq
from .transformer import TransformerDecoder, TransformerEncoder


def build_model(cfg: ModelConfig, src_vocab_size: int, trg_vocab_size: int,
                pad_id: int = 1) -> Seq2Seq:
    """A :class:`Seq2Seq` whose embedding and output sizes come from the vocabularies."""
    if cfg.arch == "transformer":
        sizes = (cfg.d_model, cfg.n_heads, cfg.ff_dim, cfg.n_layers, cfg.dropout)
        return Seq2Seq(TransformerEncoder(src_vocab_size, *sizes, pad_id=pad_id),  # type: ignore[arg-type]
                       TransformerDecoder(trg_vocab_size, *sizes, pad_id=pad_id))
    encoder = Encoder(src_vocab_size, cfg.emb_dim, cfg.hid_dim, cfg.n_layers, cfg.dropout,
                      bidirectional=cfg.bidirectional, pad_id=pad_id)
    if cfg.attention == "none":
        decoder: DecoderBase = Decoder(trg_vocab_size, cfg.emb_dim, cfg.hid_dim, cfg.n_layers,
                                       cfg.dropout, pad_id=pad_id)
    else:
        decoder = AttentionDecoder(trg_vocab_size, cfg.emb_dim, cfg.hid_dim, cfg.n_layers,
                                   cfg.dropout, enc_dim=encoder.out_dim, kind=cfg.attention,
                                   pad_id=pad_id)
    return Seq2Seq(encoder, decoder)
