"""Notebook 04's model exercises (MyEncoder, MyDecoder, MySeq2Seq): each checker rejects the
typical wrong answers and names the failing case; a passing check keeps the learner's cell."""

import linecache

import pytest
import torch
from conftest import rejects
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from seq2seq_lib import Encoded
from seq2seq_lib.exercises import EXERCISES, answer_source, exercise_for_cell, stub_source
from seq2seq_lib.exercises.keep import cell_source, kept_solution

ALL = EXERCISES
EncoderAnswer = ALL["encoder"].answer
DecoderAnswer = ALL["decoder"].answer
Seq2SeqAnswer = ALL["seq2seq"].answer


@pytest.fixture(autouse=True)
def checkpoint_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_CHECKPOINTS", str(tmp_path))
    return tmp_path




def as_cell(source: str, name: str, cell: str = "<ipython-input-1>"):
    """Run ``source`` as IPython runs a cell: its text registered in linecache under ``cell``."""
    linecache.cache[cell] = (len(source), None, source.splitlines(True), cell)
    namespace: dict = {}
    exec(compile(source, cell, "exec"), namespace)
    return namespace[name]


# ---------------------------------------------------------------------------------------------
# MyEncoder
# ---------------------------------------------------------------------------------------------


class EncoderNoPacking(EncoderAnswer):
    """Runs the GRU over the padding: the hidden state is taken at a padded position."""

    def forward(self, src, src_lens):
        outputs, hidden = self.rnn(self.dropout(self.embedding(src)))
        return Encoded(outputs, hidden, (src != self.pad_id).t())


class EncoderDropoutInEval(EncoderAnswer):
    """``F.dropout`` does not look at ``self.training``: dropout stays on in eval()."""

    def forward(self, src, src_lens):
        embedded = nn.functional.dropout(self.embedding(src), self.dropout.p)
        packed = pack_padded_sequence(embedded, src_lens, enforce_sorted=False)
        outputs, hidden = self.rnn(packed)
        outputs = nn.utils.rnn.pad_packed_sequence(outputs, total_length=src.shape[0])[0]
        return Encoded(outputs, hidden, (src != self.pad_id).t())


class EncoderWrongNames(nn.Module):
    def __init__(self, vocab_size, emb_dim, hid_dim, n_layers, dropout):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(emb_dim, hid_dim, n_layers)


class EncoderTuple(EncoderAnswer):
    def forward(self, src, src_lens):
        enc = super().forward(src, src_lens)
        return enc.outputs, enc.hidden


class EncoderMaskTimeMajor(EncoderAnswer):
    def forward(self, src, src_lens):
        enc = super().forward(src, src_lens)
        return Encoded(enc.outputs, enc.hidden, src != self.pad_id)  # [src_len, batch]


class EncoderOneLayer(EncoderAnswer):
    def __init__(self, vocab_size, emb_dim, hid_dim, n_layers, dropout):
        super().__init__(vocab_size, emb_dim, hid_dim, 1, dropout)  # n_layers ignored


def test_encoder_rejects_typical_mistakes(capsys):
    check = ALL["encoder"].check
    out = rejects(check, EncoderNoPacking, "批量里有填充（长度不同）", capsys)
    assert "pack_padded_sequence" in out and "期望" in out and "得到" in out
    rejects(check, EncoderDropoutInEval, "dropout=0.5，eval() 模式", capsys)
    out = rejects(check, EncoderWrongNames, "没有填充，n_layers=1", capsys)
    assert "embedding.weight" in out and "emb.weight" in out and "属性要叫" in out
    out = rejects(check, EncoderTuple, "没有填充，n_layers=1", capsys)
    assert "应返回 Encoded" in out
    out = rejects(check, EncoderMaskTimeMajor, "没有填充，n_layers=1", capsys)
    assert "mask：形状应为 [2, 4]，得到 [4, 2]" in out
    rejects(check, EncoderOneLayer, "n_layers=2", capsys)


# ---------------------------------------------------------------------------------------------
# MyDecoder
# ---------------------------------------------------------------------------------------------


class DecoderFromZeros(DecoderAnswer):
    """Ignores the hidden state it is given: every sentence starts from zeros."""

    def forward(self, inputs, hidden, enc):
        states, hidden = self.rnn(self.dropout(self.embedding(inputs)))
        return states, hidden, None


class DecoderReturnsLogits(DecoderAnswer):
    def forward(self, inputs, hidden, enc):
        states, hidden, _ = super().forward(inputs, hidden, enc)
        return self.fc_out(states), hidden, None


class DecoderDropoutInEval(DecoderAnswer):
    def forward(self, inputs, hidden, enc):
        embedded = nn.functional.dropout(self.embedding(inputs), self.dropout.p)
        states, hidden = self.rnn(embedded, hidden)
        return states, hidden, None


class DecoderWrongNames(DecoderAnswer):
    def __init__(self, vocab_size, emb_dim, hid_dim, n_layers, dropout):
        super().__init__(vocab_size, emb_dim, hid_dim, n_layers, dropout)
        self.out = self.fc_out
        del self.fc_out


class DecoderTwoValues(DecoderAnswer):
    def forward(self, inputs, hidden, enc):
        return super().forward(inputs, hidden, enc)[:2]


def test_decoder_rejects_typical_mistakes(capsys):
    check = ALL["decoder"].check
    rejects(check, DecoderFromZeros, "一步：inputs 是 [1, batch]", capsys)
    out = rejects(check, DecoderReturnsLogits, "一步：inputs 是 [1, batch]", capsys)
    assert "states：形状应为 [1, 3, 5]，得到 [1, 3, 13]" in out
    rejects(check, DecoderDropoutInEval, "dropout=0.5，eval() 模式", capsys)
    out = rejects(check, DecoderWrongNames, "一步：inputs 是 [1, batch]", capsys)
    assert "fc_out.weight" in out and "out.weight" in out
    out = rejects(check, DecoderTwoValues, "一步：inputs 是 [1, batch]", capsys)
    assert "(states, hidden, None)" in out


# ---------------------------------------------------------------------------------------------
# MySeq2Seq
# ---------------------------------------------------------------------------------------------


class Seq2SeqShifted(Seq2SeqAnswer):
    """The lesson's misalignment: the decoder reads the whole target, and row t is scored as if
    it predicted trg[t + 1] (one word too late)."""

    def forward(self, src, src_lens, trg, teacher_forcing_ratio=1.0, pad_id=None):
        enc = self.encode(src, src_lens)
        states, _, _ = self.decoder(trg, enc.hidden, enc)
        logits = self.decoder.project(states)[1:]
        return logits if pad_id is None else logits[trg[1:] != pad_id]


class Seq2SeqPadIgnored(Seq2SeqAnswer):
    def forward(self, src, src_lens, trg, teacher_forcing_ratio=1.0, pad_id=None):
        return super().forward(src, src_lens, trg, teacher_forcing_ratio)


class Seq2SeqZeroContext(Seq2SeqAnswer):
    """The decoder never sees the source: it starts from zeros, not from enc.hidden."""

    def forward(self, src, src_lens, trg, teacher_forcing_ratio=1.0, pad_id=None):
        enc = self.encode(src, src_lens)
        states, _, _ = self.decoder(trg[:-1], torch.zeros_like(enc.hidden), enc)
        logits = self.decoder.project(states)
        return logits if pad_id is None else logits[trg[1:] != pad_id]


class Seq2SeqNoRatio(Seq2SeqAnswer):
    def forward(self, src, src_lens, trg, pad_id=None):  # the training step passes a ratio
        return super().forward(src, src_lens, trg, 1.0, pad_id)


class Seq2SeqLastLayerOnly(Seq2SeqAnswer):
    def forward(self, src, src_lens, trg, teacher_forcing_ratio=1.0, pad_id=None):
        enc = self.encode(src, src_lens)
        hidden = enc.hidden[-1:].expand_as(enc.hidden).contiguous()  # the top layer twice
        states, _, _ = self.decoder(trg[:-1], hidden, enc)
        logits = self.decoder.project(states)
        return logits if pad_id is None else logits[trg[1:] != pad_id]


def test_seq2seq_rejects_typical_mistakes(capsys):
    check = ALL["seq2seq"].check
    rejects(check, Seq2SeqShifted, "有填充的批量：logits 对齐 trg[1:]", capsys)
    out = rejects(check, Seq2SeqPadIgnored, "给了 pad_id：只返回要打分的行", capsys)
    assert "形状应为 [7, 13]" in out
    rejects(check, Seq2SeqZeroContext, "有填充的批量：logits 对齐 trg[1:]", capsys)
    out = rejects(check, Seq2SeqNoRatio, "给了 pad_id：只返回要打分的行", capsys)
    assert "运行时出错 TypeError" in out
    rejects(check, Seq2SeqLastLayerOnly, "n_layers=2，dropout=0.5，eval() 模式", capsys)


# ---------------------------------------------------------------------------------------------
# Classes in the harness: stubs, cells, kept solutions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["encoder", "decoder", "seq2seq"])
def test_class_stubs_keep_the_statement_docstrings_and_signatures(name):
    stub, answer = stub_source(name), answer_source(name)
    function = ALL[name].function
    assert f"class {function}(nn.Module):" in stub and exercise_for_cell(stub) is ALL[name]
    assert stub.count("raise NotImplementedError") == answer.count("    def ")
    assert "super().__init__()" not in stub and "super().__init__()" in answer
    if name == "decoder":
        assert "has_attention = False" in stub
    assert exercise_for_cell(f"class {function}:\n    pass") is ALL[name]
    assert exercise_for_cell(f"x = {function}(1, 2)") is None


def test_a_passing_check_keeps_the_cell_and_a_failing_one_forgets_it(checkpoint_folder, capsys):
    check = ALL["encoder"].check
    mine = as_cell(answer_source("encoder"), "MyEncoder")
    assert cell_source(mine) == answer_source("encoder")
    assert check(mine) is True
    assert "已记下你的 MyEncoder" in capsys.readouterr().out
    assert kept_solution("encoder") == answer_source("encoder")
    assert (checkpoint_folder / "exercises" / "encoder.py").is_file()
    broken = as_cell(answer_source("encoder").replace("self.rnn(packed)", "self.rnn(embedded)"),
                     "MyEncoder", "<ipython-input-2>")
    assert check(broken) is False
    assert kept_solution("encoder") is None


def test_a_class_without_findable_source_is_not_kept(capsys):
    assert ALL["encoder"].check(EncoderAnswer) is True  # defined in a file: found there
    assert kept_solution("encoder") is not None
    namespace: dict = {}
    exec(answer_source("encoder"), namespace)  # no file, no cell
    assert ALL["encoder"].check(namespace["MyEncoder"]) is True
    assert "找不到 MyEncoder 所在单元格的源代码" in capsys.readouterr().out


def test_folded_source_for_after_the_exercise():
    from seq2seq_lib import Encoder
    from seq2seq_lib.exercises import show_answer, show_folded

    folded = show_folded(Encoder)
    html = folded._repr_html_()
    assert html.startswith("<details><summary>") and "</details>" in html
    assert "class Encoder(nn.Module):" in repr(folded) and "&lt;" not in folded.code
    assert "pack_padded_sequence" in html and "Encoder" in folded.summary
    answer = show_answer("MyEncoder")
    assert answer.code == answer_source("encoder") and "MyEncoder" in answer.summary
    assert "<b>" not in show_folded(Encoder, summary="<b>x</b>")._repr_html_()
