import pytest
from hypothesis import given
from hypothesis import strategies as st

from seq2seq_lib import SPECIALS, Vocab

SENTS = [["a", "b", "c"], ["a", "b"], ["a", "d"], ["e"]]


def test_specials_have_the_lesson_ids():
    v = Vocab.build(SENTS)
    assert [v[s] for s in SPECIALS] == [0, 1, 2, 3]
    assert (v.unk_id, v.pad_id, v.sos_id, v.eos_id) == (0, 1, 2, 3)


def test_most_frequent_first_ties_alphabetical():
    v = Vocab.build(SENTS)
    assert v.itos[4:] == ["a", "b", "c", "d", "e"]


def test_min_freq_and_max_size_are_both_honoured():
    assert Vocab.build(SENTS, min_freq=2).itos[4:] == ["a", "b"]
    assert Vocab.build(SENTS, max_size=6).itos == list(SPECIALS) + ["a", "b"]
    assert len(Vocab.build(SENTS, min_freq=1, max_size=5)) == 5


@given(st.lists(st.lists(st.sampled_from("abcdefghij<>"), max_size=8), max_size=30),
       st.integers(1, 3), st.integers(4, 12))
def test_ids_are_contiguous_and_within_max_size(sents, min_freq, max_size):
    v = Vocab.build(sents, min_freq=min_freq, max_size=max_size)
    assert len(v) <= max_size
    assert sorted(v.stoi.values()) == list(range(len(v)))
    ids = v.encode([t for s in sents for t in s])
    assert all(0 <= i < len(v) for i in ids)


def test_encode_decode_round_trip_and_unknowns():
    v = Vocab.build(SENTS)
    ids = v.encode(["a", "zzz", "b"], add_sos_eos=True)
    assert ids == [2, 4, 0, 5, 3]
    assert v.decode(ids) == ["a", "<unk>", "b"]
    assert v.decode([4, 3, 5]) == ["a"]  # stops at <eos>
    assert "a" in v and "zzz" not in v


def test_save_and_load(tmp_path):
    v = Vocab.build([["你好", "世界"]])
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == v.itos


def test_unk_rate():
    v = Vocab.build(SENTS, min_freq=2)
    assert v.unk_rate([["a", "x"], ["b", "y"]]) == 0.5


def test_bad_vocabularies_are_refused():
    with pytest.raises(ValueError, match="must start with"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="max_size"):
        Vocab.build(SENTS, max_size=2)
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(SENTS, min_freq=0)


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e", "f", "<unk>", "<pad>", "好"]),
                       st.integers(1, 5)),
       st.integers(1, 3), st.one_of(st.none(), st.integers(4, 9)))
def test_from_counts_is_the_one_ranking_rule(counts, min_freq, max_size):
    """``build`` (token lists), ``from_counts`` (counts, as the cache has them) and
    ``unk_rate_curve`` rank alike: specials first, then by count, ties alphabetical."""
    from seq2seq_lib.vocab import unk_rate_curve

    expected = sorted((t for t, n in counts.items() if n >= min_freq and t not in SPECIALS),
                      key=lambda t: (-counts[t], t))
    expected = list(SPECIALS) + expected[: None if max_size is None else max_size - 4]
    sentences = [[tok] * n for tok, n in counts.items()]
    assert Vocab.from_counts(counts, min_freq, max_size).itos == expected
    assert Vocab.build(sentences, min_freq, max_size).itos == expected
    sizes, rates = unk_rate_curve(sentences, [list(expected[4:])], min_freq)
    assert rates[len(expected) - 4] == 0.0 and sizes[len(expected) - 4] == len(expected)


def test_from_counts_checks_its_settings():
    with pytest.raises(ValueError, match="min_freq must be >= 1"):
        Vocab.from_counts({"a": 1}, min_freq=0)
    with pytest.raises(ValueError, match="max_size must be at least 4"):
        Vocab.from_counts({"a": 1}, max_size=3)
