import math

import pytest
import torch

from seq2seq_lib import (
    AdditiveAttention,
    AttentionDecoder,
    LuongAttention,
    ModelConfig,
    Translator,
    batch_loss,
    build_model,
    collate,
)

V_SRC, V_TRG = 30, 40
KINDS = ["bahdanau", "dot", "general"]


def model(kind="bahdanau", bidirectional=False, n_layers=2):
    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=16, hid_dim=24, n_layers=n_layers, dropout=0.3,
                      bidirectional=bidirectional, attention=kind)
    return build_model(cfg, V_SRC, V_TRG).eval()


def sentence(n, start=4):
    return torch.tensor([2, *range(start, start + n), 3])


def batch():
    """Three sentences of different lengths: the shorter ones are padded."""
    return collate([(sentence(5), sentence(6, start=10)), (sentence(2), sentence(4, start=20)),
                    (sentence(8), sentence(3, start=5))])


CASES = [(k, bi) for k in KINDS for bi in (False, True) if not (k == "dot" and bi)]


@pytest.mark.parametrize("kind, bidirectional", CASES)
def test_weights_sum_to_one_over_real_words_and_are_zero_on_padding(kind, bidirectional):
    m, b = model(kind, bidirectional), batch()
    enc = m.encode(b.src, b.src_lens)
    states, attn = m.decode_states(enc, b.trg[:-1])
    steps, size = b.trg.shape[0] - 1, b.src.shape[0]
    assert isinstance(m.decoder, AttentionDecoder) and m.decoder.has_attention
    assert states.shape == (steps, 3, 24)  # [steps, batch, hid_dim]
    assert attn.shape == (steps, 3, size)  # [steps, batch, src_len]
    for i, n in enumerate(b.src_lens.tolist()):
        torch.testing.assert_close(attn[:, i, :n].sum(-1), torch.ones(steps))
        assert torch.all(attn[:, i, n:] == 0)  # exactly zero, not merely small
        assert torch.all(attn[:, i, :n] > 0)


@pytest.mark.parametrize("kind, bidirectional", CASES)
def test_padding_does_not_change_a_sentences_output(kind, bidirectional):
    m = model(kind, bidirectional)
    alone = collate([(sentence(2), sentence(4, start=20))])
    padded = batch()  # the same pair is the 2nd of a longer batch
    logits_alone = m(alone.src, alone.src_lens, alone.trg)[:, 0]
    logits_padded = m(padded.src, padded.src_lens, padded.trg)[: alone.trg.shape[0] - 1, 1]
    torch.testing.assert_close(logits_alone, logits_padded, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, bidirectional", CASES)
def test_fused_teacher_forced_pass_equals_step_by_step_decoding(kind, bidirectional):
    m, b = model(kind, bidirectional), batch()
    enc = m.encode(b.src, b.src_lens)
    fused_states, fused_attn = m.decode_states(enc, b.trg[:-1])
    hidden, states, attns = enc.hidden, [], []
    for t in range(b.trg.shape[0] - 1):
        state, hidden, attn = m.decoder(b.trg[t : t + 1], hidden, enc)
        states.append(state[0])
        attns.append(attn[0])
    torch.testing.assert_close(fused_states, torch.stack(states), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_attn, torch.stack(attns), rtol=1e-5, atol=1e-5)
    # and the model's two training paths agree
    fused = m(b.src, b.src_lens, b.trg, fused=True)
    stepwise = m(b.src, b.src_lens, b.trg, fused=False)
    torch.testing.assert_close(fused, stepwise, rtol=1e-5, atol=1e-5)


def reference_attention(score, query, keys, length):
    """Plain Python: softmax of score(q, k_j) over the first ``length`` keys, then the context."""
    weights, contexts = [], []
    for q in query:  # one query per decoder step
        scores = [float(score(q, keys[j])) for j in range(length)]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        row = [e / sum(exps) for e in exps] + [0.0] * (len(keys) - length)
        weights.append(row)
        contexts.append(sum(w * k for w, k in zip(row, keys)))
    return torch.tensor(weights), torch.stack(contexts)


@pytest.mark.parametrize("kind", KINDS)
def test_attention_matches_a_hand_computed_softmax(kind):
    torch.manual_seed(3)
    q_dim, k_dim = 3, 3 if kind == "dot" else 5
    if kind == "bahdanau":
        att = AdditiveAttention(q_dim, k_dim, attn_dim=4)
        Wq, Wk, bk, v = att.w_query.weight, att.w_key.weight, att.w_key.bias, att.v.weight[0]
        score = lambda q, k: v @ torch.tanh(Wq @ q + Wk @ k + bk)
    else:
        att = LuongAttention(q_dim, k_dim, kind)
        W = att.w.weight if kind == "general" else None  # [q_dim, k_dim]
        score = (lambda q, k: q @ k) if kind == "dot" else (lambda q, k: q @ (W @ k))
    query = torch.randn(2, 2, q_dim)  # [batch, steps, q_dim]
    keys = torch.randn(2, 4, k_dim)  # [batch, src_len, k_dim]
    lengths = [4, 2]
    mask = torch.tensor([[True] * 4, [True, True, False, False]])  # [batch, src_len]
    with torch.no_grad():
        weights, context = att(query, keys, mask)
        for b, n in enumerate(lengths):
            ref_w, ref_c = reference_attention(score, query[b], keys[b], n)
            torch.testing.assert_close(weights[b], ref_w)
            torch.testing.assert_close(context[b], ref_c)


def test_dot_attention_refuses_different_sizes():
    with pytest.raises(ValueError, match="'dot' attention needs"):
        model("dot", bidirectional=True)
    with pytest.raises(ValueError, match="unknown attention"):
        AttentionDecoder(10, 4, 4, 1, 0.0, enc_dim=4, kind="cosine")


def test_gradients_reach_the_attention_and_the_encoder():
    m, b = model("bahdanau", bidirectional=True), batch()
    m.train()
    loss, _ = batch_loss(m, b)
    loss.backward()
    for name in ("decoder.attention.w_key.weight", "decoder.attention.v.weight",
                 "decoder.combine.weight", "encoder.rnn.weight_hh_l0_reverse"):
        assert m.get_parameter(name).grad.abs().sum() > 0, name


def test_attention_model_memorizes_the_tiny_corpus(attention_translator, tiny_corpus):
    translator, result = attention_translator
    assert result.history[-1]["train_loss"] < 0.05
    zh = [z for z, _ in tiny_corpus.pairs]
    en = [e for _, e in tiny_corpus.pairs]
    assert translator.translate_batch(zh) == en
    assert translator.translate_batch(zh, beam_size=4) == en


def test_attention_map_labels_fit_the_weights(attention_translator):
    translator, _ = attention_translator
    src, trg, weights = translator.attention_map("他是老师。")
    assert src[0] == "<sos>" and src[-1] == "<eos>" and "老师" in src
    assert trg == ["he", "is", "a", "teacher", ".", "<eos>"]
    assert weights.shape == (len(trg), len(src)) and weights.dtype == torch.float32
    # rows sum to 1 up to the precision the translator decodes in (bf16 keeps ~3 digits)
    tol = 1e-2 if translator.precision.name == "bf16" else 1e-5
    torch.testing.assert_close(weights.sum(-1), torch.ones(len(trg)), atol=tol, rtol=0)


def test_attention_checkpoint_round_trip_gives_identical_translations(attention_translator,
                                                                      tmp_path, tiny_corpus):
    translator, _ = attention_translator
    loaded = Translator.from_checkpoint(translator.save(tmp_path / "attn.pt"))
    assert isinstance(loaded.model.decoder, AttentionDecoder)
    assert loaded.model_cfg.attention == "bahdanau"
    sentences = [zh for zh, _ in tiny_corpus.pairs] + ["我喜欢学习机器学习。"]
    for beam in (1, 3):
        assert (loaded.translate_batch(sentences, beam_size=beam)
                == translator.translate_batch(sentences, beam_size=beam))
    _, _, w1 = loaded.attention_map("我有一只猫。")
    _, _, w2 = translator.attention_map("我有一只猫。")
    torch.testing.assert_close(w1, w2)


def test_projected_keys_are_computed_once_per_source_batch():
    m, b = model("bahdanau"), batch()
    calls = []
    m.decoder.attention.w_key.register_forward_hook(lambda *_: calls.append(1))
    enc = m.encode(b.src, b.src_lens)
    hidden = enc.hidden
    for t in range(4):
        _, hidden, _ = m.decoder(b.trg[t : t + 1], hidden, enc)
    assert len(calls) == 1 and len(enc.cache) == 1
