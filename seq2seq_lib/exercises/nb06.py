"""Notebook 06's exercises: the greedy loop, and BLEU counted from scratch."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from sacrebleu.metrics import BLEU
from torch import nn

from ..decode import greedy_decode
from ..models import Encoded
from ..vocab import Vocab
from .harness import Exercise, _Case, _case, _check, register

# ---------------------------------------------------------------------------------------------
# 06 · the greedy loop
# ---------------------------------------------------------------------------------------------


class _ScriptedDecoder(nn.Module):
    """A decoder that says sentence b's script word by word, as long as it is fed its own words.

    The hidden state [1, batch, 2] holds (which script, which step). If the word fed in is not
    the script's previous word, the decoder answers ``<unk>``; in training mode ("dropout on") it
    picks the next id instead, so forgetting ``model.eval()`` changes the output.
    """

    has_attention = False

    def __init__(self, scripts: list[list[int]], vocab_size: int):
        super().__init__()
        self.scripts = scripts
        self.vocab_size = vocab_size

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded
                ) -> tuple[torch.Tensor, torch.Tensor, None]:
        if inputs.dim() != 2 or inputs.shape[0] != 1:  # what the learner sees: in Chinese
            raise ValueError(f"每一步解码器的输入应是 [1, batch]（inp.unsqueeze(0)），"
                             f"得到的形状是 {list(inputs.shape)}")
        logits = torch.zeros(inputs.shape[1], self.vocab_size)  # [batch, vocab]
        for b, fed in enumerate(inputs[0].tolist()):
            row, step = (int(v) for v in hidden[0, b])
            script = self.scripts[row]
            previous = Vocab.sos_id if step == 0 else script[min(step, len(script)) - 1]
            word = script[step] if step < len(script) else Vocab.eos_id
            word = word if fed == previous else Vocab.unk_id
            if self.training:
                word = (word + 1) % self.vocab_size
            logits[b, word] = 4.0
            logits[b, (word + 2) % self.vocab_size] = 1.0  # a runner-up, as real models have
        return logits.unsqueeze(0), hidden + torch.tensor([0.0, 1.0]), None

    def project(self, states: torch.Tensor) -> torch.Tensor:
        return states  # the states already are logits


class _ScriptedModel(nn.Module):
    """A stand-in for :class:`~seq2seq_lib.models.Seq2Seq`: ``src[0, b]`` picks sentence b's
    script; the same ``encode`` / ``decoder`` / ``decoder.project`` interface."""

    def __init__(self, scripts: list[list[int]], vocab_size: int = 12):
        super().__init__()
        self.decoder = _ScriptedDecoder(scripts, vocab_size)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> Encoded:
        batch = src.shape[1]
        hidden = torch.stack([src[0].float(), torch.zeros(batch)], dim=-1).unsqueeze(0)
        return Encoded(torch.zeros(src.shape[0], batch, 2), hidden, (src != Vocab.pad_id).t())


def answer_greedy_decode(model: nn.Module, src: torch.Tensor, src_lens: torch.Tensor,
                         max_len: int = 50, sos_id: int = 2, eos_id: int = 3) -> list[list[int]]:
    """Greedy decoding of a batch: at every step, feed back the most probable word.

    :param model: a ``Seq2Seq`` (``encode``, ``decoder``, ``decoder.project``).
    :param src: [src_len, batch]; :param src_lens: [batch].
    :param max_len: the most output words per sentence (``<eos>`` not counted).
    :return: per sentence, the chosen ids without ``<sos>`` and ``<eos>``.
    """
    model.eval()  # dropout off while decoding
    batch = src.shape[1]
    with torch.no_grad():
        enc = model.encode(src, src_lens)
        hidden = enc.hidden  # [n_layers, batch, hid_dim]
        inp = torch.full((batch,), sos_id, dtype=torch.long, device=src.device)  # [batch]
        outputs: list[list[int]] = [[] for _ in range(batch)]
        finished = [False] * batch
        for _ in range(max_len):
            state, hidden, _ = model.decoder(inp.unsqueeze(0), hidden, enc)  # [1, batch, hid]
            inp = model.decoder.project(state[0]).argmax(-1)  # [batch], fed back next step
            for b, word in enumerate(inp.tolist()):
                if word == eos_id:
                    finished[b] = True
                elif not finished[b]:  # words after a sentence's <eos> are not kept
                    outputs[b].append(word)
            if all(finished):
                break
    return outputs


def _reference_greedy(model: nn.Module, src: torch.Tensor, src_lens: torch.Tensor,
                      max_len: int, sos_id: int, eos_id: int) -> list[list[int]]:
    return [h.ids for h in greedy_decode(model, src, src_lens, max_len, sos_id, eos_id)]


def _id_lists(got: Any) -> list[list[int]] | Any:
    """The learner's result as lists of ints, when it is lists (or tensors) of ids."""
    try:
        return [[int(i) for i in sent] for sent in got]
    except (TypeError, ValueError):
        return got


def _greedy_cases() -> list[_Case]:
    def case(name: str, point: str, scripts: list[list[int]], max_len: int,
             training: bool = False) -> _Case:
        def run(fn: Callable) -> Any:
            model = _ScriptedModel(scripts)
            model.train(training)
            src = torch.tensor([list(range(len(scripts))), [3] * len(scripts)])  # [2, batch]
            lens = torch.full((len(scripts),), 2, dtype=torch.long)
            return _id_lists(fn(model, src, lens, max_len, Vocab.sos_id, Vocab.eos_id))

        shown = f"模型每句的脚本（<eos> = 3）：{scripts}，max_len={max_len}"
        return _Case(name, run, shown + ("，模型处于训练模式" if training else ""), point)

    three = [[5, 6, 3, 9, 9, 9], [3, 8, 8, 8], [7, 8, 9, 10, 3, 5]]
    return [
        case("一句话，第 4 步输出 <eos>", "<sos> 开始，每步把自己选的词喂回去；<eos> 不放进结果。",
             [[5, 6, 7, 3]], 10),
        case("三句话在不同的步结束（一句第 1 步就结束）", "每句在自己的 <eos> 处结束，之后模型"
             "再说什么都不要；全部结束才停。", three, 10),
        case("一直不输出 <eos>：到 max_len 截断", "最多 max_len 个词。",
             [[5, 6, 7, 8, 9, 10, 11, 4]], 4),
        case("max_len = 1", "每句最多 1 个词。", three, 1),
        case("模型处于训练模式", "解码前要 model.eval()，否则 dropout 开着，结果会变。", three, 10,
             training=True),
    ]


def check_greedy_decode(fn: Callable) -> bool:
    """Check ``fn(model, src, src_lens, max_len, sos_id, eos_id) -> list[list[int]]`` against
    :func:`~seq2seq_lib.decode.greedy_decode`, on a tiny scripted model whose sentences end at
    different steps (and which answers ``<unk>`` when it is not fed its own previous word)."""
    hint = ("先 model.eval()，再 enc = model.encode(src, src_lens)；从 <sos> 开始，每一步用 "
            "model.decoder(inp.unsqueeze(0), hidden, enc) 和 model.decoder.project(...) 得到 "
            "logits，取 argmax 喂回去；每句在自己的 <eos> 处结束，最多 max_len 个词。")
    return _check(fn, hint, _greedy_cases, _reference_greedy)


# ---------------------------------------------------------------------------------------------
# 06 · BLEU from scratch
# ---------------------------------------------------------------------------------------------


def bleu_from_scratch(hyps: list[list[str]], refs: list[list[str]]) -> float:
    """Corpus BLEU (0-100) of tokenized hypotheses, one reference each, without smoothing.

    ``BLEU = BP · exp((log p1 + log p2 + log p3 + log p4) / 4)``, where ``p_n`` is the clipped
    n-gram precision summed over the whole corpus (matches / hypothesis n-grams) and the brevity
    penalty ``BP = exp(1 - r / c)`` when the hypotheses' total length c is below the references'
    r (else 1). If some order has no match at all, BLEU is 0.
    """
    return bleu_from_counts(*bleu_counts(hyps, refs))


def bleu_counts(hyps: list[list[str]], refs: list[list[str]]
                ) -> tuple[list[int], list[int], int, int]:
    """What corpus BLEU is computed from: clipped n-gram matches and hypothesis n-grams for
    n = 1..4, summed over the corpus, and the total lengths c (hypotheses) and r (references)."""
    matches, totals = [0] * 4, [0] * 4
    for hyp, ref in zip(hyps, refs):
        for n in range(1, 5):
            hyp_ngrams = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
            ref_ngrams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
            # clipping: an n-gram is credited at most as often as the reference has it
            matches[n - 1] += sum(min(count, ref_ngrams[g]) for g, count in hyp_ngrams.items())
            totals[n - 1] += sum(hyp_ngrams.values())
    return matches, totals, sum(len(h) for h in hyps), sum(len(ref) for ref in refs)


def brevity_penalty(c: int, r: int) -> float:
    """1 when the hypotheses are at least as long as the references (c ≥ r), else exp(1 - r / c)."""
    return 1.0 if c >= r else (math.exp(1 - r / c) if c else 0.0)


def bleu_from_counts(matches: list[int], totals: list[int], c: int, r: int) -> float:
    """BLEU from :func:`bleu_counts`: 100 · BP · geometric mean of p_1..p_4, 0 when some order
    has no match (no smoothing)."""
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / 4
    return 100 * brevity_penalty(c, r) * math.exp(log_precision)


def sacrebleu_on_tokens(hyps: list[list[str]], refs: list[list[str]],
                        smooth_method: str = "none") -> float:
    """sacreBLEU's corpus score of already tokenized sentences, one reference each.

    The tokens are joined with spaces and scored with ``tokenize="none"`` (sacreBLEU splits on
    whitespace again), so both sides see the same tokens as :func:`bleu_from_scratch`; tokens
    must not contain spaces. ``smooth_method="none"`` is the textbook formula; sacreBLEU's
    default ``"exp"`` gives the same number whenever every order has at least one match.
    """
    bleu = BLEU(tokenize="none", smooth_method=smooth_method)
    return bleu.corpus_score([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]]).score


def _bleu_cases() -> list[_Case]:
    names = ("hyps", "refs")
    mat = "the cat sat on the mat by the door".split()
    dog = "a small dog ran across the green park today".split()
    short = "the cat sat on the mat".split()
    return [
        _case("译文与参考完全相同", "完全相同时 BLEU = 100。", names, ([mat, dog], [mat, dog])),
        _case("语料级 BLEU，不是逐句平均", "先把所有句子的匹配数、总数、长度加起来，最后算一次。",
              names, ([mat, dog[:5] + ["yesterday", "and", "then", "more"]], [mat, dog])),
        _case("有一句全是重复的词：计数要截断", "一个 n-gram 最多算它在参考里出现的次数。", names,
              ([mat, ["the"] * 6], [mat, "the dog is on the mat".split()])),
        _case("译文比参考短：简短惩罚", "c < r 时乘以 exp(1 − r / c)，c、r 是整个语料的总长度。",
              names, ([short, dog[:6]], [mat, dog])),
        _case("译文比参考长：没有惩罚", "c ≥ r 时简短惩罚是 1。", names,
              ([mat + ["again"], dog + ["and", "then"]], [mat, dog])),
        _case("没有任何 4-gram 匹配：BLEU 为 0", "不做平滑：某一阶的匹配数为 0 时几何平均是 0。",
              names, ([["the", "cat", "sat", "by", "the", "mat", "on", "door"]], [mat])),
        _case("有一句不到 4 个词", "长度为 2 的句子没有 3-gram 和 4-gram，不要算出负数个。", names,
              ([mat, ["small", "dog"]], [mat, "a small dog".split()])),
        _case("有一句译文是空的", "空译文没有 n-gram，长度 0，只影响简短惩罚。", names,
              ([mat, dog, []], [mat, dog, ["hello"]])),
    ]


def check_bleu(fn: Callable) -> bool:
    """Check ``fn(hyps, refs) -> float`` (0-100, token lists, one reference per hypothesis)
    against sacreBLEU (``tokenize="none"``, ``smooth_method="none"``) within 0.01."""
    hint = ("对 n = 1..4，把整个语料里截断后的 n-gram 匹配数和译文 n-gram 总数分别加起来；"
            "BLEU = 100 · BP · exp(Σ log pₙ / 4)，简短惩罚 BP = exp(1 − r/c)（c < r 时，否则 1）；"
            "某一阶没有匹配时返回 0。")
    return _check(fn, hint, _bleu_cases, sacrebleu_on_tokens, atol=0.01)


register(
    Exercise("greedy_decode", "06", "my_greedy_decode", check_greedy_decode,
             answer_greedy_decode, "import torch\nfrom torch import nn"),
    Exercise("bleu", "06", "my_bleu", check_bleu, bleu_from_scratch,
             "import math\nfrom collections import Counter",
             (bleu_counts, brevity_penalty, bleu_from_counts)),
)
