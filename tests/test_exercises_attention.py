"""Notebooks 06 and 07's new exercises: my_translate_sentence (against Translator) and
MyAdditiveAttention / MyAttentionDecoder (the library's weights loaded into them): each checker
rejects the typical wrong answers and names the failing case."""

import pytest
import torch
from conftest import rejects
from torch import nn

from seq2seq_lib import ModelConfig, Translator, build_model, detokenize_en, set_seed, tokenize_zh
from seq2seq_lib.exercises import EXERCISES, answer_source

ALL = EXERCISES
AttentionAnswer = ALL["additive_attention"].answer
DecoderAnswer = ALL["attention_decoder"].answer


@pytest.fixture(autouse=True)
def checkpoint_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_CHECKPOINTS", str(tmp_path))




# ---------------------------------------------------------------------------------------------
# 06 my_translate_sentence
# ---------------------------------------------------------------------------------------------


def translate(sentence, model, src_vocab, trg_vocab, max_len=50, *, evaluate=True, strip=True,
              detok=True, unk=True):
    """The reference pipeline with one mistake switched on at a time; its own greedy loop, so
    that leaving out ``model.eval()`` matters (``greedy_decode`` switches dropout off itself)."""
    tokens = tokenize_zh(sentence)
    ids = src_vocab.encode(tokens, add_sos_eos=True) if unk else (
        [2] + [src_vocab.stoi[t] for t in tokens if t in src_vocab.stoi] + [3])
    src, lens = torch.tensor(ids).unsqueeze(1), torch.tensor([len(ids)])
    if evaluate:
        model.eval()
    with torch.no_grad():
        enc = model.encode(src, lens)
        hidden, inp, out = enc.hidden, torch.tensor([2]), []
        for _ in range(max_len):
            state, hidden, _ = model.decoder(inp.unsqueeze(0), hidden, enc)
            inp = model.decoder.project(state[0]).argmax(-1)
            out.append(int(inp))
            if out[-1] == 3:
                break
    words = trg_vocab.decode(out, strip_specials=strip) if strip else [
        trg_vocab.itos[i] for i in [2, *out]]
    return detokenize_en(words, capitalize=True) if detok else " ".join(words)


def test_translate_sentence_accepts_the_right_pipeline_written_out(capsys):
    assert ALL["translate_sentence"].check(translate) is True
    capsys.readouterr()


def test_translate_sentence_rejects_typical_mistakes(capsys):
    check = ALL["translate_sentence"].check
    rejects(check, lambda *a: translate(*a, evaluate=False), "模型交来时处于 train() 模式", capsys)
    out = rejects(check, lambda *a: translate(*a, strip=False), "一句普通的话", capsys)
    assert "<sos>" in out and "<eos>" in out
    out = rejects(check, lambda *a: translate(*a, detok=False), "一句普通的话", capsys)
    assert "'i like studying machine studying .'" in out
    out = rejects(check, lambda *a: translate(*a, unk=False), "有词表里没有的词", capsys)
    assert "'I like.'" in out and "'I like ⁇.'" in out

    def keyerror(sentence, model, src_vocab, trg_vocab, max_len=50):
        [src_vocab.stoi[t] for t in tokenize_zh(sentence)]  # KeyError on an unknown word
        return ALL["translate_sentence"].answer(sentence, model, src_vocab, trg_vocab, max_len)

    out = rejects(check, keyerror, "有词表里没有的词", capsys)
    assert "运行时出错 KeyError" in out


def test_translate_answer_equals_the_translator_on_a_real_model(tiny_data):
    """On a real (seeded, untrained) library model and the tiny corpus's vocabularies."""
    data_cfg, data = tiny_data
    set_seed(0)
    model = build_model(ModelConfig(emb_dim=16, hid_dim=16, n_layers=2, dropout=0.3),
                        len(data.src_vocab), len(data.trg_vocab))
    namespace: dict = {}
    exec(answer_source("translate_sentence"), namespace)
    mine = namespace["my_translate_sentence"]
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, ModelConfig(),
                            "cpu", precision="fp32")
    for zh, _ in data.splits.train[:4]:
        model.train()  # the answer switches dropout off itself
        assert mine(zh, model, data.src_vocab, data.trg_vocab, 12) == translator.translate(zh, 12)


# ---------------------------------------------------------------------------------------------
# 07 MyAdditiveAttention
# ---------------------------------------------------------------------------------------------


class MaskAfterSoftmax(AttentionAnswer):
    def forward(self, query, keys, mask):
        q, k = self.w_query(query).unsqueeze(2), self.w_key(keys).unsqueeze(1)
        weights = torch.softmax(self.v(torch.tanh(q + k)).squeeze(-1), -1) * mask.unsqueeze(1)
        return weights, torch.bmm(weights, keys)


class NoMask(AttentionAnswer):
    def forward(self, query, keys, mask):
        q, k = self.w_query(query).unsqueeze(2), self.w_key(keys).unsqueeze(1)
        weights = torch.softmax(self.v(torch.tanh(q + k)).squeeze(-1), -1)
        return weights, torch.bmm(weights, keys)


class SoftmaxOverSteps(AttentionAnswer):
    def forward(self, query, keys, mask):
        q, k = self.w_query(query).unsqueeze(2), self.w_key(keys).unsqueeze(1)
        scores = self.v(torch.tanh(q + k)).squeeze(-1).masked_fill(~mask.unsqueeze(1), -1e9)
        weights = torch.softmax(scores, dim=1)  # over the decoder steps
        return weights, torch.bmm(weights, keys)


class NoTanh(AttentionAnswer):
    def forward(self, query, keys, mask):
        q, k = self.w_query(query).unsqueeze(2), self.w_key(keys).unsqueeze(1)
        scores = self.v(q + k).squeeze(-1).masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, -1)
        return weights, torch.bmm(weights, keys)


class MaskThenRenormalise(AttentionAnswer):
    """Softmax, zero the padding, renormalise: right on paper, but exp overflows."""

    def forward(self, query, keys, mask):
        q, k = self.w_query(query).unsqueeze(2), self.w_key(keys).unsqueeze(1)
        e = torch.exp(self.v(torch.tanh(q + k)).squeeze(-1) * 100) * mask.unsqueeze(1)
        weights = e / e.sum(-1, keepdim=True)
        return weights, torch.bmm(weights, keys)


class QueryBias(AttentionAnswer):
    def __init__(self, query_dim, key_dim, attn_dim):
        super().__init__(query_dim, key_dim, attn_dim)
        self.w_query = nn.Linear(query_dim, attn_dim)  # a bias the library's has not


def test_additive_attention_rejects_typical_mistakes(capsys):
    check = ALL["additive_attention"].check
    out = rejects(check, MaskAfterSoftmax, "第二句有填充", capsys)
    assert "weights：" in out
    rejects(check, NoMask, "第二句有填充", capsys)
    rejects(check, SoftmaxOverSteps, "没有填充，一步（steps=1）", capsys)
    rejects(check, NoTanh, "没有填充，一步（steps=1）", capsys)
    rejects(check, MaskThenRenormalise, "没有填充，一步（steps=1）", capsys)
    out = rejects(check, QueryBias, "没有填充，一步（steps=1）", capsys)
    assert "w_query.bias" in out


# ---------------------------------------------------------------------------------------------
# 07 MyAttentionDecoder
# ---------------------------------------------------------------------------------------------


def decoder_with(*, query_from_embedding=False, order_swapped=False, no_tanh=False,
                 batch_first_weights=False):
    class Wrong(DecoderAnswer):
        def forward(self, inputs, hidden, enc):
            embedded = self.dropout(self.embedding(inputs))
            states, hidden = self.rnn(embedded, hidden)
            query = (embedded if query_from_embedding else states).transpose(0, 1)
            if query_from_embedding:
                query = query[..., : states.shape[-1]]
            keys = enc.outputs.transpose(0, 1)
            weights, context = self.attention(query, keys, enc.mask)
            parts = [query, context] if order_swapped else [context, query]
            combined = self.combine(torch.cat(parts, dim=-1))
            combined = combined if no_tanh else torch.tanh(combined)
            out = self.dropout(combined).transpose(0, 1)
            return out, hidden, weights if batch_first_weights else weights.transpose(0, 1)

    return Wrong


def test_attention_decoder_rejects_typical_mistakes(capsys):
    check = ALL["attention_decoder"].check
    assert check(decoder_with()) is True
    capsys.readouterr()
    rejects(check, decoder_with(query_from_embedding=True), "一步，源句有填充", capsys)
    rejects(check, decoder_with(order_swapped=True), "一步，源句有填充", capsys)
    rejects(check, decoder_with(no_tanh=True), "一步，源句有填充", capsys)
    out = rejects(check, decoder_with(batch_first_weights=True), "一步，源句有填充", capsys)
    assert "weights：形状应为 [1, 2, 4]，得到 [2, 1, 4]" in out


def test_the_learners_attention_module_fits_into_the_decoder(capsys):
    """MyAttentionDecoder may use the learner's MyAdditiveAttention: the same weight names."""
    namespace: dict = {}
    exec(answer_source("additive_attention"), namespace)
    mine = namespace["MyAdditiveAttention"]

    class WithMine(DecoderAnswer):
        def __init__(self, vocab_size, emb_dim, hid_dim, n_layers, dropout, enc_dim):
            super().__init__(vocab_size, emb_dim, hid_dim, n_layers, dropout, enc_dim)
            self.attention = mine(hid_dim, enc_dim, hid_dim)

    assert ALL["attention_decoder"].check(WithMine) is True
    capsys.readouterr()
