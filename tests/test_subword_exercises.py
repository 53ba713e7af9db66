"""Notebook 09's checkers pass the reference answers and fail the typical wrong ones: ties broken
the other way, no end-of-word marker, merges applied in the wrong order, overlaps counted twice."""

from __future__ import annotations

from collections import Counter

import pytest

from seq2seq_lib import exercises as ex
from seq2seq_lib.subword import merge_pair


def answer(name: str):
    ns: dict = {}
    exec(ex.answer_source(name), ns)
    return ns[ex.get_exercise(name).function]


def stub(name: str):
    ns: dict = {}
    exec(ex.stub_source(name), ns)
    return ns[ex.get_exercise(name).function]


def learner_bpe(word_counts, n_merges, *, marker=True, overlaps_twice=False, tie="smallest"):
    """A learner's BPE with one typical mistake switched on."""
    words = Counter({(*w, "</w>") if marker else tuple(w): n for w, n in word_counts.items()})
    merges = []
    for _ in range(n_merges):
        counts = Counter()
        for symbols, n in words.items():
            seen = -2
            for i in range(len(symbols) - 1):
                pair = (symbols[i], symbols[i + 1])
                if not overlaps_twice and pair[0] == pair[1] and seen == i - 1:
                    continue
                seen = i if pair[0] == pair[1] else seen
                counts[pair] += n
        if not counts:
            break
        if tie == "smallest":
            best = min(counts, key=lambda p: (-counts[p], p))
        elif tie == "largest":
            best = max(counts, key=lambda p: (counts[p], p))
        else:  # the first one seen: Counter.most_common
            best = counts.most_common(1)[0][0]
        merges.append(best)
        merged = Counter()
        for symbols, n in words.items():
            merged[merge_pair(symbols, best)] += n
        words = merged
    return merges


def test_the_learner_bpe_without_mistakes_passes(capsys):
    assert ex.check_learn_bpe(learner_bpe)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, case", [
    ({"tie": "largest"}, "平局"),
    ({"tie": "first seen"}, "平局"),
    ({"marker": False}, "词尾"),
    ({"overlaps_twice": True}, "重叠"),
])
def test_learn_bpe_checker_names_the_mistake(mistake, case, capsys):
    assert not ex.check_learn_bpe(lambda counts, n: learner_bpe(counts, n, **mistake))
    assert case in capsys.readouterr().out.splitlines()[0]


def apply_reversed(word, merges):
    symbols = (*word, "</w>")
    for pair in reversed(merges):
        symbols = merge_pair(symbols, pair)
    return list(symbols)


def apply_by_frequency_of_position(word, merges):
    """Merges the leftmost mergeable pair first, whatever its rank."""
    symbols, ranks = [*word, "</w>"], set(map(tuple, merges))
    while True:
        at = next((i for i in range(len(symbols) - 1) if (symbols[i], symbols[i + 1]) in ranks), None)
        if at is None:
            return symbols
        symbols[at:at + 2] = [symbols[at] + symbols[at + 1]]


def apply_without_marker(word, merges):
    symbols = tuple(word)
    for pair in merges:
        symbols = merge_pair(symbols, pair)
    return list(symbols)


def apply_right_to_left(word, merges):
    symbols = [*word, "</w>"]
    for left, right in merges:
        i = len(symbols) - 2
        while i >= 0:
            if symbols[i] == left and symbols[i + 1] == right:
                symbols[i:i + 2] = [left + right]
            i -= 1
    return symbols


@pytest.mark.parametrize("wrong, case", [
    (apply_reversed, "先后顺序"),
    (apply_by_frequency_of_position, "先后顺序"),
    (apply_without_marker, "词尾"),
    (apply_right_to_left, "重叠"),
])
def test_apply_bpe_checker_names_the_mistake(wrong, case, capsys):
    assert not ex.check_apply_bpe(wrong)
    assert case in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("name", ["learn_bpe", "apply_bpe"])
def test_reference_answers_pass_and_stubs_get_the_hint(name, capsys):
    exercise = ex.get_exercise(name)
    assert exercise.notebook == "09"
    assert exercise.check(answer(name))
    assert not exercise.check(stub(name))
    assert "NotImplementedError" in capsys.readouterr().out


def test_merges_as_lists_are_accepted():
    assert ex.check_learn_bpe(lambda counts, n: [list(m) for m in learner_bpe(counts, n)])
