"""vocab_stats / unk_rate_curve against Vocab.build, and the vocabulary explorer widget."""

import pytest

from seq2seq_lib.vocab import Vocab, unk_rate_curve, vocab_stats
from seq2seq_lib.widgets import VocabExplorer, vocab_explorer

TRAIN = [["a", "b", "c"], ["a", "b"], ["a", "d"], ["e", "a"], ["b", "f"]]
VALID = [["a", "x"], ["b", "c", "y"], ["f", "<pad>"]]


def test_vocab_stats_counts_what_each_rule_cuts():
    s = vocab_stats(TRAIN, VALID, min_freq=2, max_size=5)
    assert s["train_types"] == 6  # a b c d e f
    assert s["cut_by_min_freq"] == 4  # c d e f are seen once
    assert s["size"] == 5 and s["cut_by_max_size"] == 1  # room for "a" only; "b" is cut
    assert s["valid_unk_rate"] == Vocab.build(TRAIN, 2, 5).unk_rate(VALID) == 5 / 7
    assert s["train_unk_rate"] == 7 / 11


@pytest.mark.parametrize("min_freq", [1, 2, 3])
def test_unk_rate_curve_matches_one_build_per_size(min_freq):
    sizes, rates = unk_rate_curve(TRAIN, VALID, min_freq)
    frequent = vocab_stats(TRAIN, VALID, min_freq)["size"]
    assert sizes == list(range(4, frequent + 1))
    for size, rate in zip(sizes, rates):
        assert rate == Vocab.build(TRAIN, min_freq, size).unk_rate(VALID)


def test_unk_rate_curve_of_empty_validation_is_zero():
    assert unk_rate_curve(TRAIN, [], 1)[1] == [0.0] * 7


def test_explorer_redraws_when_a_slider_moves():
    box = vocab_explorer(TRAIN, VALID, min_freq=1)
    assert isinstance(box, VocabExplorer)
    assert box.max_size.max == 10  # four specials + six training types
    assert box.stats == vocab_stats(TRAIN, VALID, 1, 10)
    summary, png = box.summary.value, bytes(box.plot.value)
    assert png.startswith(b"\x89PNG")
    box.min_freq.value = 2
    assert box.stats == vocab_stats(TRAIN, VALID, 2, 10)
    assert box.summary.value != summary and bytes(box.plot.value) != png
    assert "<b>6</b>" in box.summary.value  # specials + a + b
    box.max_size.value = 5
    assert box.stats["size"] == 5 and box.stats["cut_by_max_size"] == 1
    assert "71.4%" in box.summary.value  # 5 of 7 validation tokens unknown
