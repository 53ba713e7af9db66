"""Notebook 09's exercises: learn BPE merges, and apply them to a word."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..subword import END_OF_WORD, apply_bpe, learn_bpe
from .harness import Exercise, _Case, _case, _check, register

# ---------------------------------------------------------------------------------------------
# 09 · learn BPE merges
# ---------------------------------------------------------------------------------------------


def answer_learn_bpe(word_counts: dict[str, int], n_merges: int) -> list[tuple[str, str]]:
    """Learn up to ``n_merges`` BPE merges from ``{word: count}``.

    Every word starts as its characters followed by the end-of-word marker ``"</w>"``
    ("low" → ``l o w </w>``). Each step counts every pair of neighbouring symbols, weighted by
    the word's count, merges the most frequent pair everywhere, and records it. Rules:

    - a pair's occurrences that overlap count once ("a a a" has one (a, a), not two);
    - ties go to the smallest pair in Python's order of ``(left, right)`` tuples;
    - stop early when no word has two symbols left.

    :return: the merges, as ``(left, right)`` tuples, in the order they were learned.
    """
    words = {tuple(w) + ("</w>",): n for w, n in word_counts.items()}
    merges = []
    for _ in range(n_merges):
        counts: dict[tuple[str, str], int] = {}
        for symbols, n in words.items():
            i = 0
            while i < len(symbols) - 1:
                pair = (symbols[i], symbols[i + 1])
                counts[pair] = counts.get(pair, 0) + n
                # the same pair again right after ("a a a"): that one cannot merge too
                i += 2 if i + 2 < len(symbols) and symbols[i + 2] == symbols[i + 1] == symbols[i] else 1
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        merged = {}
        for symbols, n in words.items():
            out, i = [], 0
            while i < len(symbols):
                if symbols[i:i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return merges


def _as_pairs(result: Any) -> Any:
    """A learner's merges as tuples (lists of two strings are fine too)."""
    if isinstance(result, (list, tuple)) and all(isinstance(m, (list, tuple)) for m in result):
        return [tuple(m) for m in result]
    return result


def _learn_bpe_cases() -> list[_Case]:
    names = ("word_counts", "n_merges")

    def case(name: str, point: str, counts: dict[str, int], n: int) -> _Case:
        c = _case(name, point, names, (counts, n))
        run = c.run
        c.run = lambda fn: _as_pairs(run(fn))
        return c

    return [
        case("词尾标记 </w>", "每个词的最后加上 \"</w>\"，它也参与合并：ab → a b </w>，"
             "(b, </w>) 出现 4 次，最多。", {"ab": 3, "b": 1}, 2),
        case("重叠的符号对 \"aaa\"", "\"a a a\" 里的 (a, a) 只能合并一次，只算一次（3 次）；"
             "算成两次（6 次），它就会错误地胜过出现 5 次的 (c, </w>)。",
             {"aaa": 3, "bc": 4, "c": 1}, 1),
        case("平局：每个符号对都只出现一次", "次数相同时选 (left, right) 元组最小的那一对，"
             "与 word_counts 的顺序无关（不是“先见到的”那一对）。", {"cd": 1, "ab": 1}, 4),
        case("平局，顺序倒过来", "次数相同时选最小的一对，所以结果和上一个用例相同。",
             {"ab": 1, "cd": 1}, 4),
        case("教科书上的例子（Sennrich 等人 2016）", "每一步合并出现次数最多的相邻符号对，按词频加权。",
             {"low": 5, "lower": 2, "newest": 6, "widest": 3}, 6),
        case("合并次数比能合并的多", "没有一个词还剩两个符号时就停下，返回已学到的合并。",
             {"a": 5, "b": 1}, 10),
        case("一次也不合并", "n_merges = 0 时返回空列表。", {"low": 5}, 0),
    ]


def check_learn_bpe(fn: Callable) -> bool:
    """Check ``fn(word_counts, n_merges) -> [(left, right), ...]`` against the library's
    :func:`~seq2seq_lib.subword.learn_bpe`."""
    hint = ("每个词写成字符加 \"</w>\"；每一步数相邻符号对（乘上词频，重叠的只算一次），"
            "取次数最多、平局时 (left, right) 最小的一对，在所有词里合并它，记下来。")
    return _check(fn, hint, _learn_bpe_cases, learn_bpe)


# ---------------------------------------------------------------------------------------------
# 09 · apply BPE merges to a word
# ---------------------------------------------------------------------------------------------


def answer_apply_bpe(word: str, merges: list[tuple[str, str]]) -> list[str]:
    """Segment ``word`` with learned BPE merges.

    Start from the word's characters followed by ``"</w>"``; apply the merges one after another,
    in the order they were learned, each to every occurrence, scanning left to right.

    :return: the symbols of the segmented word (the last one ends with ``"</w>"``).
    """
    symbols = list(word) + ["</w>"]
    for left, right in merges:
        out, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
                out.append(left + right)
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        symbols = out
    return symbols


def _apply_bpe_cases() -> list[_Case]:
    names = ("word", "merges")
    W = END_OF_WORD
    textbook = learn_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 10)

    def case(name: str, point: str, word: str, merges: Sequence[tuple[str, str]]) -> _Case:
        c = _case(name, point, names, (word, list(merges)))
        run = c.run
        c.run = lambda fn: list(run(fn)) if isinstance(run(fn), (list, tuple)) else run(fn)
        return c

    return [
        case("词尾标记 </w>", "词的最后一个符号后面有 \"</w>\"：ab → a b </w>，"
             "合并 (b, </w>) 得到 a b</w>。", "ab", [("b", W)]),
        case("合并的先后顺序", "按学到的顺序一条一条地用，不是从左往右找第一处能合并的："
             "先 (b, c)，\"abc\" 就成了 a bc，(a, b) 再也用不上。", "abc", [("b", "c"), ("a", "b")]),
        case("重叠的 \"aaa\"", "从左往右扫：\"a a a\" 合并 (a, a) 得到 aa a，不是 a aa。",
             "aaa", [("a", "a")]),
        case("\"aaaa\"：每一处都要合并", "一条合并要用到词里的每一处：aa aa。",
             "aaaa", [("a", "a")]),
        case("教科书上的合并，一个没见过的词", "没见过的词也能切：能合并的地方合并。",
             "lowest", textbook),
        case("词中间和词尾", "(low, </w>) 只发生在词尾：lowlow → low low</w>。",
             "lowlow", [("l", "o"), ("lo", "w"), ("low", W)]),
        case("没有一条合并用得上", "只剩单个字符，最后是 \"</w>\"。", "xyz", textbook),
        case("单个字符的词", "\"a\" → a </w>。", "a", []),
    ]


def check_apply_bpe(fn: Callable) -> bool:
    """Check ``fn(word, merges) -> [symbol, ...]`` against the library's
    :func:`~seq2seq_lib.subword.apply_bpe`."""
    hint = ("从 list(word) + [\"</w>\"] 出发，按 merges 的顺序，每条合并从左往右扫一遍，"
            "把相邻的 (left, right) 换成 left + right。")
    return _check(fn, hint, _apply_bpe_cases, apply_bpe)


register(Exercise("learn_bpe", "09", "my_learn_bpe", check_learn_bpe, answer_learn_bpe, ""),
         Exercise("apply_bpe", "09", "my_apply_bpe", check_apply_bpe, answer_apply_bpe, ""))
