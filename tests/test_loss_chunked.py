"""The chunked output layer + cross-entropy equals the one-piece ``cross_entropy(fc_out(h))``."""

import dataclasses

import pytest
import torch
from torch import nn

from seq2seq_lib import ModelConfig, TrainConfig, batch_loss, build_model, collate
from seq2seq_lib.loss import DEFAULT_CHUNK, chunked_cross_entropy
from seq2seq_lib.train import chunkable_output

V_SRC, V_TRG = 30, 41


def reference(states, weight, bias, target, label_smoothing=0.0):
    logits = nn.functional.linear(states, weight, bias)
    return nn.functional.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)


def grads(fn, *leaves):
    for leaf in leaves:
        leaf.grad = None
    loss = fn()
    loss.backward()
    return loss.detach(), [leaf.grad.clone() for leaf in leaves]


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("with_bias", [True, False])
def test_equals_cross_entropy_of_the_full_logits(chunk, label_smoothing, with_bias):
    torch.manual_seed(0)
    states = torch.randn(17, 8, requires_grad=True)
    weight = torch.randn(V_TRG, 8, requires_grad=True)
    bias = torch.randn(V_TRG, requires_grad=True) if with_bias else None
    target = torch.randint(0, V_TRG, (17,))
    leaves = [states, weight] + ([bias] if with_bias else [])
    want, want_grads = grads(lambda: reference(states, weight, bias, target, label_smoothing),
                             *leaves)
    got, got_grads = grads(lambda: chunked_cross_entropy(states, weight, bias, target, chunk,
                                                         label_smoothing), *leaves)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_gradient_scales_with_the_incoming_gradient_and_skips_frozen_inputs():
    torch.manual_seed(1)
    states = torch.randn(5, 4, requires_grad=True)
    weight = torch.randn(V_TRG, 4)  # frozen
    target = torch.randint(0, V_TRG, (5,))
    (3.0 * chunked_cross_entropy(states, weight, None, target, 2)).backward()
    want = torch.autograd.grad(3.0 * reference(states, weight, None, target), states)[0]
    torch.testing.assert_close(states.grad, want, rtol=1e-5, atol=1e-6)
    assert weight.grad is None
    with torch.no_grad():  # evaluation: the loss only
        loss = chunked_cross_entropy(states, weight, None, target, 2)
        assert loss.grad_fn is None
        torch.testing.assert_close(loss, reference(states, weight, None, target))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="chunk"):
        chunked_cross_entropy(torch.zeros(2, 3), torch.zeros(4, 3), None, torch.zeros(2).long(), 0)
    with pytest.raises(ValueError, match="target"):
        chunked_cross_entropy(torch.zeros(2, 3), torch.zeros(4, 3), None, torch.zeros(3).long())


def test_under_bf16_autocast_it_matches_the_autocast_linear_layer():
    torch.manual_seed(2)
    layer = nn.Linear(16, V_TRG)
    states = torch.randn(23, 16, requires_grad=True)
    target = torch.randint(0, V_TRG, (23,))
    leaves = [states, layer.weight, layer.bias]

    def one_piece():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = layer(states)
        return nn.functional.cross_entropy(logits.float(), target, label_smoothing=0.1)

    def chunked():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return chunked_cross_entropy(states, layer.weight, layer.bias, target, 5, 0.1)

    want, want_grads = grads(one_piece, *leaves)
    got, got_grads = grads(chunked, *leaves)
    assert got.dtype == torch.float32
    assert [g.dtype for g in got_grads] == [torch.float32] * 3  # master weights stay fp32
    torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=5e-2, atol=2e-3)


def model(**kw):
    torch.manual_seed(0)
    if kw.get("arch") == "transformer":
        cfg = ModelConfig(arch="transformer", d_model=16, n_heads=2, ff_dim=32, n_layers=2,
                          dropout=0.0)
    else:
        cfg = ModelConfig(emb_dim=16, hid_dim=24, n_layers=2, dropout=0.0, **kw)
    return build_model(cfg, V_SRC, V_TRG)


def batch():
    sentence = lambda n, s: torch.tensor([2, *range(s, s + n), 3])
    return collate([(sentence(5, 4), sentence(6, 10)), (sentence(3, 4), sentence(4, 20)),
                    (sentence(7, 5), sentence(2, 30))])


@pytest.mark.parametrize("kw", [{}, {"attention": "bahdanau"}, {"arch": "transformer"}],
                         ids=["gru", "attention", "transformer"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_batch_loss_chunked_equals_one_piece_for_every_architecture(kw, label_smoothing):
    m, b = model(**kw), batch()
    assert chunkable_output(m) is m.decoder.fc_out
    if kw.get("arch") == "transformer":  # the output weight is the embedding's
        assert m.decoder.fc_out.weight is m.decoder.embed.embedding.weight
    params = [p for p in m.parameters() if p.requires_grad]

    def run(chunk):
        m.zero_grad(set_to_none=True)
        loss, n = batch_loss(m, b, label_smoothing=label_smoothing, loss_chunk=chunk)
        loss.backward()
        return loss.detach(), n, [p.grad.clone() for p in params]

    want, n_want, want_grads = run(0)
    got, n_got, got_grads = run(4)  # 4 tokens a chunk: several chunks, the last one short
    assert n_got == n_want == 12 + 3  # the words and each sentence's <eos>
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_a_learners_own_decoder_keeps_the_one_piece_loss():
    class OwnProjection(type(model().decoder)):
        def project(self, states):
            return self.fc_out(states) * 2.0

    m = model()
    m.decoder.__class__ = OwnProjection
    assert chunkable_output(m) is None
    torch.testing.assert_close(batch_loss(m, batch())[0], batch_loss(m, batch(), loss_chunk=0)[0])


def test_the_config_default_is_the_loss_modules():
    assert TrainConfig().loss_chunk == DEFAULT_CHUNK
    with pytest.raises(ValueError, match="loss_chunk"):
        dataclasses.replace(TrainConfig(), loss_chunk=-1)


def test_the_states_come_only_from_the_fused_path():
    m, b = model(), batch()
    states = m(b.src, b.src_lens, b.trg, pad_id=1, project=False)
    assert states.shape == (15, 24)  # [n_tokens, hid_dim]
    torch.testing.assert_close(m.decoder.project(states), m(b.src, b.src_lens, b.trg, pad_id=1))
    with pytest.raises(ValueError, match="project=False"):
        m(b.src, b.src_lens, b.trg, teacher_forcing_ratio=0.5, pad_id=1, project=False)
