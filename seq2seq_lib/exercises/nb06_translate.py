"""Notebook 06's pipeline exercise: ``my_translate_sentence``, the lesson's ``translate_sentence``
done right (tokenize → ids → ``eval()`` → greedy → detokenize), checked against the library's
:class:`~seq2seq_lib.translator.Translator` on a small word-for-word stand-in model."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..config import DataConfig, ModelConfig
from ..decode import greedy_decode
from ..interface import Encoded
from ..tokenize import detokenize_en, tokenize_zh
from ..translator import Translator
from ..vocab import SPECIALS, Vocab
from .harness import Exercise, _Case, _check, register


def answer_translate_sentence(sentence: str, model: nn.Module, src_vocab: Vocab, trg_vocab: Vocab,
                              max_len: int = 50) -> str:
    """Translate one Chinese sentence greedily, as the library's ``Translator`` does.

    :param sentence: raw Chinese text, e.g. ``"我喜欢学习机器学习。"``.
    :param model: a trained ``Seq2Seq`` (``model.encode``, ``model.decoder``), on any device.
    :param src_vocab: the Chinese vocabulary it was trained with; words it does not list are
        ``<unk>``. :param trg_vocab: the English one.
    :param max_len: the most output words.
    :return: the English sentence: no ``<sos>``/``<eos>``, unknown words as ⁇, detokenized and
        capitalised (``detokenize_en(tokens, capitalize=True)``), e.g. ``"I like studying."``.
    """
    tokens = tokenize_zh(sentence)  # jieba, as the training sentences were segmented
    ids = src_vocab.encode(tokens, add_sos_eos=True)  # unknown words become <unk>
    device = next(model.parameters()).device
    src = torch.tensor(ids, device=device).unsqueeze(1)  # [src_len, batch=1]
    src_lens = torch.tensor([len(ids)])  # [1], on the CPU (packing wants it there)
    model.eval()  # dropout off: the same input always gives the same translation
    with torch.no_grad():
        hyp = greedy_decode(model, src, src_lens, max_len)[0]  # ids without <sos>/<eos>
    return detokenize_en(trg_vocab.decode(hyp.ids), capitalize=True)


# ---------------------------------------------------------------------------------------------
# A word-for-word stand-in model: source word i becomes target word i
# ---------------------------------------------------------------------------------------------

ZH = ["我", "喜欢", "学习", "机器", "。", "你好", "，", "老师", "！", "茶"]
EN = ["i", "like", "studying", "machine", ".", "hello", ",", "teacher", "!", "tea"]


class _WordDecoder(nn.Module):
    """Says the target word of each real source word in turn, then ``<eos>``. In training mode
    ("dropout on") it says the next word id instead, so forgetting ``eval()`` shows."""

    has_attention = False

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded
                ) -> tuple[torch.Tensor, torch.Tensor, None]:
        steps, batch = inputs.shape  # one step at a time, or several (teacher forcing)
        logits = torch.zeros(steps, batch, self.vocab_size)
        for t in range(steps):
            for b in range(batch):
                position = int(hidden[0, b, 0]) + t + 1  # the source word after <sos>
                word = int(enc.outputs[position, b, 0]) if position < enc.outputs.shape[0] else 3
                word = Vocab.eos_id if word == Vocab.pad_id else word
                if self.training:
                    word = (word + 1) % self.vocab_size
                logits[t, b, word] = 4.0
                logits[t, b, (word + 2) % self.vocab_size] = 1.0  # a runner-up
        return logits, hidden + steps, None

    def project(self, states: torch.Tensor) -> torch.Tensor:
        return states  # the states already are logits


class _WordModel(nn.Module):
    """The ``Seq2Seq`` interface (``encode``, ``decoder``, ``decoder.project``) around
    :class:`_WordDecoder`; ``enc.outputs`` carries the source ids."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # where the model lives (its device)
        self.decoder = _WordDecoder(vocab_size)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> Encoded:
        batch = src.shape[1]
        return Encoded(src.unsqueeze(-1).float(), torch.zeros(1, batch, 1), (src != 1).t())


def _vocabs() -> tuple[Vocab, Vocab]:
    return Vocab(list(SPECIALS) + ZH), Vocab(list(SPECIALS) + EN)


def _reference(sentence: str, model: nn.Module, src_vocab: Vocab, trg_vocab: Vocab,
               max_len: int = 50) -> str:
    """The library's answer: a :class:`Translator` around the same model (fp32, no truecaser)."""
    translator = Translator(model, src_vocab, trg_vocab, DataConfig(), ModelConfig(), "cpu",
                            precision="fp32")
    return translator.translate(sentence, max_len)


def _case(name: str, point: str, sentence: str, training: bool = False) -> _Case:
    def run(fn: Callable) -> str:
        src_vocab, trg_vocab = _vocabs()
        model = _WordModel(len(trg_vocab)).train(training)
        return fn(sentence, model, src_vocab, trg_vocab, 50)

    shown = (f"sentence={sentence!r}，一个逐词翻译的小模型（中文词表 {ZH}，第 i 个词译成英文词表的"
             f"第 i 个：{EN}）" + ("，交来时处于 train() 模式" if training else ""))
    return _Case(name, run, shown, point)


def _translate_cases() -> list[_Case]:
    return [
        _case("一句普通的话", "结果里不要有 <sos> <eos>；词元要还原成句子（detokenize_en，"
              "首字母大写，标点贴着前一个词）。", "我喜欢学习机器学习。"),
        _case("有词表里没有的词", "词表里没有的词要变成 <unk>（src_vocab.encode 会这样做），"
              "不要丢掉，也不要报错；输出里的 <unk> 显示为 ⁇。", "我喜欢喝咖啡。"),
        _case("逗号和感叹号", "detokenize_en 把 , ! 贴到前一个词上。", "你好，老师！"),
        _case("只有一个词和句号", "src 形状是 [src_len, 1]，src_lens 是 [1]。", "茶。"),
        _case("模型交来时处于 train() 模式", "翻译前要 model.eval()，否则暂退法开着，同一句话"
              "每次的译文都可能不同。", "我喜欢学习。", training=True),
    ]


def check_translate_sentence(fn: Callable) -> bool:
    """Check ``fn(sentence, model, src_vocab, trg_vocab, max_len) -> str`` against
    :meth:`Translator.translate <seq2seq_lib.translator.Translator.translate>`."""
    hint = ("tokens = tokenize_zh(sentence)；ids = src_vocab.encode(tokens, add_sos_eos=True)；"
            "src 是 [src_len, 1] 的张量，src_lens = torch.tensor([len(ids)])；model.eval()，"
            "greedy_decode(model, src, src_lens, max_len)[0].ids；最后 detokenize_en("
            "trg_vocab.decode(ids), capitalize=True)。")
    return _check(fn, hint, _translate_cases, _reference)


register(Exercise("translate_sentence", "06", "my_translate_sentence", check_translate_sentence,
                  answer_translate_sentence,
                  "import torch\nfrom torch import nn\n\n"
                  "from seq2seq_lib import Vocab, detokenize_en, greedy_decode, tokenize_zh"))
