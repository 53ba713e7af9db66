import random

import torch

from seq2seq_lib import ModelConfig, batch_loss, build_model, collate, count_parameters
from seq2seq_lib.batching import Batch

V_SRC, V_TRG = 30, 40


def model(**kw):
    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=16, hid_dim=24, n_layers=2, dropout=0.3, **kw)
    return build_model(cfg, V_SRC, V_TRG).eval()


def sentence(n, start=4):
    return torch.tensor([2, *range(start, start + n), 3])


def test_packed_encoder_ignores_padding():
    m = model()
    short = sentence(3)
    alone = collate([(short, sentence(1))])
    padded = collate([(sentence(9), sentence(1)), (short, sentence(1)), (sentence(6), sentence(1))])
    assert padded.src.shape[0] > alone.src.shape[0]
    h_alone = m.encode(alone.src, alone.src_lens).hidden[:, 0]
    h_padded = m.encode(padded.src, padded.src_lens).hidden[:, 1]
    torch.testing.assert_close(h_alone, h_padded)


def test_encoder_shapes_unidirectional_and_bidirectional():
    for bi in (False, True):
        m = model(bidirectional=bi)
        b = collate([(sentence(5), sentence(2)), (sentence(2), sentence(2))])
        enc = m.encode(b.src, b.src_lens)
        assert enc.hidden.shape == (2, 2, 24)  # [n_layers, batch, hid_dim]
        assert enc.outputs.shape == (7, 2, 48 if bi else 24)  # [src_len, batch, enc_dim]
        assert enc.mask.shape == (2, 7) and enc.mask[1].tolist() == [True] * 4 + [False] * 3
        assert enc.outputs[4:, 1].abs().sum() == 0  # padding positions stay zero


def batch():
    return collate([(sentence(5), sentence(6, start=10)), (sentence(3), sentence(4, start=20))])


def test_fused_and_stepwise_decoders_give_the_same_logits():
    m, b = model(), batch()
    fused = m(b.src, b.src_lens, b.trg, teacher_forcing_ratio=1.0, fused=True)
    stepwise = m(b.src, b.src_lens, b.trg, teacher_forcing_ratio=1.0, fused=False)
    assert fused.shape == (b.trg.shape[0] - 1, 2, V_TRG)
    torch.testing.assert_close(fused, stepwise, rtol=1e-5, atol=1e-5)


def test_logits_row_t_reads_trg_t_and_predicts_trg_t_plus_1():
    """Alignment: row t may depend on trg[:t+1] only, and the loss scores it against trg[t+1]."""
    m, b = model(), batch()
    logits = m(b.src, b.src_lens, b.trg)
    changed = b.trg.clone()
    changed[3, 0] = 7  # alter the 4th target word of sentence 0
    logits2 = m(b.src, b.src_lens, changed)
    torch.testing.assert_close(logits[:3], logits2[:3])  # rows 0..2 never saw trg[3]
    assert not torch.allclose(logits[3, 0], logits2[3, 0])  # row 3 reads trg[3]
    # the loss uses exactly these rows against trg[1:]
    loss, n = batch_loss(m, Batch(b.src, b.src_lens, b.trg))
    ref = torch.nn.functional.cross_entropy(logits.flatten(0, 1), b.trg[1:].flatten(), ignore_index=1)
    torch.testing.assert_close(loss, ref)
    assert n == int((b.trg[1:] != 1).sum())


def test_batch_loss_is_the_same_on_both_paths():
    m, b = model(), batch()
    fused, _ = batch_loss(m, b, teacher_forcing_ratio=1.0)
    random.seed(1)
    stepwise, _ = batch_loss(m, b, teacher_forcing_ratio=0.999999)  # all coin flips say "teacher"
    torch.testing.assert_close(fused, stepwise, rtol=1e-5, atol=1e-5)


def test_embedding_sizes_come_from_the_vocabularies():
    m = model()
    shapes = dict((name, shape) for name, shape, _ in count_parameters(m))
    assert shapes["encoder.embedding.weight"] == (V_SRC, 16)
    assert shapes["decoder.embedding.weight"] == (V_TRG, 16)
    assert shapes["decoder.fc_out.weight"] == (V_TRG, 24)
    assert sum(n for *_, n in count_parameters(m)) == sum(p.numel() for p in m.parameters())
