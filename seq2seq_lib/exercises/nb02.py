"""Notebook 02's exercise: build a vocabulary (the token list ``itos``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ..vocab import Vocab
from .harness import Exercise, _Case, _case, _check, register

# ---------------------------------------------------------------------------------------------
# 02 · build a vocabulary
# ---------------------------------------------------------------------------------------------


def answer_build_vocab(tokenized: list[list[str]], min_freq: int = 1,
                       max_size: int | None = None) -> list[str]:
    """The vocabulary as a token list (``itos``): the four specials first, then the kept tokens.

    :param tokenized: the training sentences, each a list of tokens.
    :param min_freq: keep a token only if it occurs at least this often.
    :param max_size: the most entries in the list, the four specials included (None: no limit).
    :return: ``["<unk>", "<pad>", "<sos>", "<eos>", most frequent token, ...]``; tokens with the
        same frequency are in alphabetical (Python string) order; a special token found in the
        data is not listed twice.
    """
    specials = ["<unk>", "<pad>", "<sos>", "<eos>"]
    counts = Counter(tok for sent in tokenized for tok in sent if tok not in specials)
    kept = [tok for tok, freq in counts.items() if freq >= min_freq]
    kept.sort(key=lambda tok: (-counts[tok], tok))  # most frequent first, ties alphabetical
    if max_size is not None:
        kept = kept[: max_size - len(specials)]  # max_size counts the specials too
    return specials + kept


def _build_vocab_cases() -> list[_Case]:
    names = ("tokenized", "min_freq", "max_size")
    freq = [["x", "x", "y", "z"], ["x", "y", "z", "w"], ["x", "y"], ["x"]]  # x 4, y 3, z 2, w 1
    return [
        _case("基本情况：频次各不相同", "按频次从高到低排列，前面是 4 个特殊符号。", names,
              ([["我", "爱", "你"], ["我", "爱"], ["我"]], 1, None)),
        _case("min_freq=2：只出现一次的词被去掉", "出现次数 < min_freq 的词不进词表。", names,
              ([["the", "cat", "sat"], ["the", "cat"], ["the", "dog"]], 2, None)),
        _case("频次相同时按字母序排列", "同频的词按字符串顺序（sorted）排列，和 Vocab.build "
              "一样；Counter.most_common 按第一次出现的顺序，不符合要求。", names,
              ([["b", "c", "a"], ["c", "a", "b"], ["d"]], 1, None)),
        _case("max_size 包含 4 个特殊符号", "max_size=6 时只剩 2 个普通词的位置。", names,
              (freq, 1, 6)),
        _case("max_size 在同频的词中间截断", "先按（频次，字母序）排好，再截断。", names,
              ([["dog", "cat", "bird"], ["dog", "cat", "bird"]], 1, 5)),
        _case("数据里出现了特殊符号", "<unk> <eos> 等已经在最前面，不能再出现一次。", names,
              ([["<unk>", "hello"], ["<eos>", "hello", "<pad>"]], 1, None)),
        _case("min_freq 比所有词的频次都大：只剩特殊符号", "没有词够频次时，词表就是 4 个特殊符号。",
              names, (freq, 5, None)),
        _case("空语料", "没有句子时，词表就是 4 个特殊符号。", names, ([], 1, None)),
        _case("max_size=4：只剩特殊符号", "4 个位置全被特殊符号占了。", names, (freq, 2, 4)),
    ]


def check_build_vocab(fn: Callable) -> bool:
    """Check ``fn(tokenized, min_freq, max_size) -> list[str]`` against :meth:`Vocab.build`."""
    hint = ("统计词频（跳过 4 个特殊符号），保留出现次数 ≥ min_freq 的词，按频次从高到低、同频按"
            "字母序排序，截到 max_size（含特殊符号），最前面放 <unk> <pad> <sos> <eos>。")
    return _check(fn, hint, _build_vocab_cases,
                  lambda tokenized, min_freq, max_size: Vocab.build(tokenized, min_freq, max_size).itos)


register(Exercise("build_vocab", "02", "my_build_vocab", check_build_vocab, answer_build_vocab,
                  "from collections import Counter"))
