"""The Transformer behind the encoder/decoder interface: shapes, masks, incremental decoding
equal to the teacher-forced pass, greedy and beam search, bf16, and training to memorize."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_setup

from seq2seq_lib import ModelConfig, Translator, build_model, fit
from seq2seq_lib.config import ConfigError
from seq2seq_lib.decode import beam_search, greedy_decode
from seq2seq_lib.transformer import (
    TransformerDecoder,
    _keys_values,
    cached_decoder_layer,
    causal_mask,
    cross_attention_maps,
    decoder_layer,
    sinusoidal_positions,
)

TINY_TF = ModelConfig(arch="transformer", d_model=32, n_heads=4, ff_dim=64, n_layers=2,
                      dropout=0.0)
PAD = 1


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(TINY_TF, 20, 25, pad_id=PAD).eval()


def batch():
    """Three sources of lengths 5, 7, 3 (padded with PAD) and a target [6, 3]."""
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, 20, (7, 3), generator=g)
    src[5:, 0] = PAD
    src[3:, 2] = PAD
    trg = torch.randint(4, 25, (6, 3), generator=g)
    trg[0] = 2
    return src, torch.tensor([5, 7, 3]), trg


def test_shapes_and_the_empty_prefix():
    model = tiny_model()
    src, lens, trg = batch()
    enc = model.encode(src, lens)
    assert enc.outputs.shape == (7, 3, 32) and enc.mask.shape == (3, 7)
    assert enc.hidden.shape == (0, 3)  # nothing read yet, indexed by sentence on dim 1
    assert enc.outputs[5:, 0].abs().max() == 0 and enc.outputs[3:, 2].abs().max() == 0
    states, hidden, attn = model.decoder(trg, enc.hidden, enc)
    assert states.shape == (6, 3, 32) and attn is None
    assert hidden.shape == (4, 3, 4, 6, 8)  # keys and values of 2 layers, 4 heads, 6 positions
    assert model(src, lens, trg).shape == (5, 3, 25)
    assert model(src, lens, trg, pad_id=PAD).shape == (15, 25)


def test_source_padding_changes_no_real_output():
    model = tiny_model()
    src, lens, trg = batch()
    longer = torch.cat([src, torch.full((4, 3), PAD)])  # four more padded positions
    longer[5:, 0] = PAD
    for padded in (longer, src.masked_fill(src == PAD, PAD)):
        a = model.encode(src, lens)
        b = model.encode(padded, lens)
        for i, n in enumerate(lens.tolist()):
            torch.testing.assert_close(a.outputs[:n, i], b.outputs[:n, i])
        torch.testing.assert_close(model.decode_states(a, trg)[0], model.decode_states(b, trg)[0])
    # sentence 2 alone (no padding) gives what it gives in the padded batch
    alone = model.encode(src[:3, 2:3], lens[2:3])
    torch.testing.assert_close(alone.outputs[:, 0], model.encode(src, lens).outputs[:3, 2])


def test_causal_mask_position_t_never_sees_later_ones():
    assert causal_mask(3).tolist() == [[False, True, True], [False, False, True],
                                       [False, False, False]]
    model = tiny_model()
    src, lens, trg = batch()
    enc = model.encode(src, lens)
    base = model.decode_states(enc, trg)[0]
    changed = trg.clone()
    changed[4] = (changed[4] + 1 - 4) % 21 + 4  # another word at position 4
    after = model.decode_states(enc, changed)[0]
    torch.testing.assert_close(after[:4], base[:4])  # positions 0..3 never see position 4
    assert (after[4:] - base[4:]).abs().max() > 1e-4


def test_one_step_at_a_time_equals_the_teacher_forced_pass():
    model = tiny_model()
    src, lens, trg = batch()
    enc = model.encode(src, lens)
    full = model.decode_states(enc, trg)[0]  # [6, 3, 32]
    hidden, steps = enc.hidden, []
    for t in range(trg.shape[0]):
        state, hidden, _ = model.decoder(trg[t : t + 1], hidden, enc)
        steps.append(state[0])
    torch.testing.assert_close(torch.stack(steps), full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(hidden, model.decoder(trg, enc.hidden, enc)[1], atol=1e-5,
                               rtol=1e-4)


def test_the_layer_by_layer_pass_is_torchs_own_decoder():
    """``decoder_layer`` on all positions equals ``nn.TransformerDecoder`` with the causal mask."""
    model = tiny_model()
    src, lens, trg = batch()
    enc = model.encode(src, lens)
    decoder = model.decoder
    x = decoder.embed(trg)
    theirs = decoder.layers(x, enc.outputs, tgt_mask=causal_mask(6), tgt_is_causal=True,
                            memory_key_padding_mask=~enc.mask)
    torch.testing.assert_close(decoder(trg, enc.hidden, enc)[0], theirs, atol=1e-5, rtol=1e-4)
    layer = decoder.layers.layers[0]
    torch.testing.assert_close(decoder_layer(layer, x, x, enc),
                               layer(x, enc.outputs, tgt_mask=causal_mask(6), tgt_is_causal=True,
                                     memory_key_padding_mask=~enc.mask), atol=1e-5, rtol=1e-4)


def test_beam_one_is_greedy_and_beams_reorder_the_prefix():
    model = tiny_model(3)
    src, lens, _ = batch()
    greedy = greedy_decode(model, src, lens, max_len=6)
    beam1 = beam_search(model, src, lens, beam_size=1, max_len=6, length_penalty=0.0)
    assert [h.ids for h in greedy] == [b[0].ids for b in beam1]
    for g, b in zip(greedy, beam1):
        assert g.score == pytest.approx(b[0].score, abs=1e-4)
    beams = beam_search(model, src, lens, beam_size=4, max_len=6, n_best=4, length_penalty=0.0)
    for b, (i, n) in zip(beams, enumerate(lens.tolist())):  # rescoring a hypothesis agrees
        hyp = b[0]
        one = src[:n, i : i + 1]
        trg = torch.tensor([2, *hyp.ids, 3]).unsqueeze(1)
        logp = model(one, lens[i : i + 1], trg).log_softmax(-1)[:, 0]  # [len, vocab]
        rescored = logp.gather(1, trg[1:]).sum().detach()
        assert float(rescored) == pytest.approx(hyp.score, abs=1e-3)


def test_bf16_autocast_decodes_and_trains():
    model = tiny_model()
    src, lens, trg = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(src, lens, trg, pad_id=PAD)
        hyps = beam_search(model, src, lens, beam_size=2, max_len=4)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all() and len(hyps) == 3
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_bf16_gradients_agree_with_fp32():
    model = tiny_model()
    model.train()
    src, lens, trg = batch()
    grads = {}
    for bf16 in (False, True):
        model.zero_grad()
        torch.manual_seed(0)  # the same dropout masks (none here: dropout 0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(src, lens, trg, pad_id=PAD)
        gold = trg[1:][trg[1:] != PAD]
        torch.nn.functional.cross_entropy(logits.float(), gold).backward()
        grads[bf16] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.isfinite(grads[True]).all()
    cosine = torch.nn.functional.cosine_similarity(grads[False], grads[True], dim=0)
    assert cosine > 0.99


def test_positions_and_the_tied_output_layer():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16) and pe.dtype == torch.float32
    assert torch.allclose(pe[0, 0::2], torch.zeros(8)) and torch.allclose(pe[0, 1::2], torch.ones(8))
    assert pe[7, 0] == pytest.approx(torch.sin(torch.tensor(7.0)).item())
    assert sinusoidal_positions(5, 7).shape == (5, 7)  # an odd size too
    model = tiny_model()
    assert isinstance(model.decoder, TransformerDecoder)
    assert model.decoder.fc_out.weight is model.decoder.embed.embedding.weight


def test_cross_attention_maps_one_per_layer_and_head():
    model = tiny_model()
    src, lens, trg = batch()
    maps = cross_attention_maps(model, src, lens, trg)
    assert maps.shape == (2, 3, 4, 6, 7)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 3, 4, 6))
    assert maps[:, 0, :, :, 5:].abs().max() == 0 and maps[:, 2, :, :, 3:].abs().max() == 0
    out = model.decode_states(model.encode(src, lens), trg)[0]  # the hooks are gone again
    assert out.shape == (6, 3, 32)


def test_config_refuses_heads_that_do_not_divide_the_size():
    with pytest.raises(ConfigError, match="d_model must be a multiple of n_heads"):
        ModelConfig(arch="transformer", d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="arch must be gru or transformer"):
        ModelConfig(arch="lstm")


def test_a_tiny_transformer_memorizes_the_tiny_corpus(tiny_data, tiny_corpus):
    data_cfg, data = tiny_data
    model, train_loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, epochs=40,
                                                              model_cfg=TINY_TF, lr=3e-3)
    result = fit(model, train_loader, valid_loader, cfg, info, progress=False)
    assert result.history[-1]["train_loss"] < 0.1
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, TINY_TF)
    zh = [z for z, _ in tiny_corpus.pairs]
    en = [e for _, e in tiny_corpus.pairs]
    greedy = translator.translate_batch(zh)
    assert sum(g == e for g, e in zip(greedy, en)) >= 18, list(zip(greedy, en))
    assert translator.translate_batch(zh, beam_size=4) == greedy or sum(
        b == e for b, e in zip(translator.translate_batch(zh, beam_size=4), en)) >= 18


def test_the_layer_with_no_past_is_the_layer_of_torchs_own_submodules():
    """Teacher forcing runs ``cached_decoder_layer`` with an empty cache: on all positions it
    is ``decoder_layer`` (torch's own sub-modules) and returns exactly the keys and values its
    self-attention used, which a later step continues from."""
    model = tiny_model(3)
    src, src_lens, _ = batch()
    enc = model.encode(src, src_lens)
    layer = model.decoder.layers.layers[0]
    x = torch.randn(5, 3, 32)
    cross = model.decoder._cross_keys_values(enc)[0]
    with torch.no_grad():
        out, kv = cached_decoder_layer(layer, x, None, cross, enc.mask)
        torch.testing.assert_close(out, decoder_layer(layer, x, x, enc), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(kv, _keys_values(layer.self_attn, layer.norm1(x)))
        # the first 3 positions' cache, continued by the last 2, gives the last 2 outputs
        head, _ = cached_decoder_layer(layer, x[:3], None, cross, enc.mask)
        tail, grown = cached_decoder_layer(layer, x[3:], kv[:, :, :, :3], cross, enc.mask)
    torch.testing.assert_close(torch.cat([head, tail]), out, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grown, kv)


def test_dropout_on_the_sub_layer_outputs_and_none_inside_the_feed_forward_part():
    """Vaswani et al.'s placement: in training, the feed-forward part of every layer is
    deterministic, and the layer as a whole is not (its sub-layer outputs are dropped)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="transformer", d_model=32, n_heads=4, ff_dim=64,
                                    n_layers=2, dropout=0.5), 20, 25, pad_id=PAD).train()
    layers = [*model.encoder.layers.layers, *model.decoder.layers.layers]
    x = torch.randn(6, 3, 32)
    for layer in layers:
        # _ff_block ends with the sub-layer's output dropout: with that one off, nothing drops
        out = layer.dropout2 if isinstance(layer, torch.nn.TransformerEncoderLayer) \
            else layer.dropout3
        assert out.p == 0.5 and layer.dropout1.p == 0.5
        out.p = 0.0
        assert torch.equal(layer._ff_block(x), layer.eval()._ff_block(x))
        layer.train()
        out.p = 0.5
    enc_layer = model.encoder.layers.layers[0]
    assert not torch.equal(enc_layer(x), enc_layer(x))
