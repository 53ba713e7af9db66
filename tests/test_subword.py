"""Subword vocabularies: the reference BPE on nasty cases, SentencePiece round trips, byte
fallback, the token settings, the pipeline, the Translator and checkpoints with spm."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from seq2seq_lib import DataConfig, Translator, prepare_data, read_parallel
from seq2seq_lib.config import ConfigError
from seq2seq_lib.subword import (
    END_OF_WORD,
    N_BYTE_PIECES,
    SubwordVocab,
    apply_bpe,
    learn_bpe,
    pair_counts,
)
from seq2seq_lib.tokenize import detokenize_output
from seq2seq_lib.truecase import TrueCaser
from seq2seq_lib.vocab import SPECIALS, Vocab

DATA = Path(__file__).parent / "data"
W = END_OF_WORD


def lines(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------- reference BPE


def test_bpe_learns_the_textbook_example_in_order():
    """Sennrich et al.'s example: "est" at the end of a word first, then "low"."""
    merges = learn_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 5)
    assert merges == [("e", "s"), ("es", "t"), ("est", W), ("l", "o"), ("lo", "w")]
    assert apply_bpe("lowest", merges) == ["low", "est" + W]


def test_bpe_ties_go_to_the_smallest_pair_whatever_the_input_order():
    # every pair is seen exactly once: ("a", "b") < ("b", "</w>") < ("c", "d") < ("d", "</w>")
    assert learn_bpe({"cd": 1, "ab": 1}, 1) == [("a", "b")]
    assert learn_bpe({"ab": 1, "cd": 1}, 1) == [("a", "b")]
    assert learn_bpe({"cd": 1, "ab": 1}, 4) == [("a", "b"), ("ab", W), ("c", "d"), ("cd", W)]


def test_bpe_counts_overlapping_pairs_once():
    """In "a a a" the pair (a, a) can be merged once, not twice."""
    assert pair_counts({("a", "a", "a", W): 3})[("a", "a")] == 3
    assert pair_counts({("a", "a", "a", "a", W): 1})[("a", "a")] == 2
    # counted twice, (a, a) would win with 6; counted once it ties with (b, c) at 4 and loses
    assert learn_bpe({"aaa": 2, "bc": 4}, 1) == [("b", "c")]
    assert apply_bpe("aaa", [("a", "a")]) == ["aa", "a", W]
    assert apply_bpe("aaaa", [("a", "a")]) == ["aa", "aa", W]


def test_bpe_applies_merges_in_their_learned_order():
    merges = [("a", "b"), ("b", "c")]
    assert apply_bpe("abc", merges) == ["ab", "c", W]
    assert apply_bpe("abc", merges[::-1]) == ["a", "bc", W]


def test_bpe_segments_unseen_words_and_marks_the_end_of_words():
    merges = learn_bpe({"low": 5, "lower": 2}, 10)
    assert apply_bpe("low", merges) == ["low" + W]  # a whole word, its end marked
    assert apply_bpe("lower", merges)[0] == "lower" + W or apply_bpe("lower", merges)[0] == "low"
    assert apply_bpe("slow", merges) == ["s", "low" + W]  # unseen: known pieces and characters
    assert apply_bpe("xyz", merges) == ["x", "y", "z", W]
    assert apply_bpe("lowlow", merges) == ["low", "low" + W]  # inside a word: no marker
    assert learn_bpe({"a": 5}, 10) == [("a", W)]  # stops when no word has two symbols left
    assert learn_bpe({}, 3) == []


# ---------------------------------------------------------------- SentencePiece


@pytest.fixture(scope="module")
def en_spm():
    return SubwordVocab.train([s.lower() for s in lines("tiny.en")], 60)


@pytest.fixture(scope="module")
def zh_spm():
    return SubwordVocab.train(lines("tiny.zh"), 60, character_coverage=0.9995)


def test_spm_ids_are_the_vocabulary_ids(en_spm):
    assert tuple(en_spm.itos[:4]) == SPECIALS
    assert (en_spm.unk_id, en_spm.pad_id, en_spm.sos_id, en_spm.eos_id) == (0, 1, 2, 3)
    assert en_spm.itos[4:6] == ["<0x00>", "<0x01>"]  # the byte pieces follow the specials
    assert len(en_spm) <= 60 + len(SPECIALS) + N_BYTE_PIECES
    text = "he is a teacher."
    assert en_spm.encode(en_spm.tokenize(text)) == en_spm.processor.encode(text)


def test_spm_round_trip_is_exact_on_the_test_data(en_spm, zh_spm):
    for vocab, texts in ((en_spm, lines("tiny.en")), (zh_spm, lines("tiny.zh"))):
        for text in texts + [line.split("\t")[0] for line in lines("tiny.tsv")]:
            assert vocab.detokenize(vocab.tokenize(text)) == text


def test_byte_fallback_leaves_no_unknown_piece(en_spm, zh_spm):
    """Characters never seen in training become byte pieces, and come back whole."""
    for vocab in (en_spm, zh_spm):
        text = "Zoë's café — 猫咪 😀,  twice spaced"
        pieces = vocab.tokenize(text)
        assert all(p in vocab.stoi for p in pieces)
        assert vocab.unk_id not in vocab.encode(pieces)
        assert any(p.startswith("<0x") for p in pieces)
        assert vocab.detokenize(pieces) == text
        assert "⁇" not in detokenize_output(pieces, vocab)


def test_spm_vocab_pickles_as_its_model_and_refuses_garbage(en_spm):
    again = pickle.loads(pickle.dumps(en_spm))
    assert type(again) is SubwordVocab and again.itos == en_spm.itos and again.model == en_spm.model
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        SubwordVocab(b"not a model")


def test_truecaser_restores_words_in_joined_text():
    tc = TrueCaser({"mary": "Mary", "sunday": "Sunday"})
    assert tc.apply_text("talk to mary on sunday, not marys.") == "talk to Mary on Sunday, not marys."


# ---------------------------------------------------------------- settings and the pipeline


def test_tokens_sets_the_sides_left_at_word():
    assert (DataConfig(tokens="spm").zh_tokens, DataConfig(tokens="spm").en_tokens) == ("spm", "spm")
    cfg = DataConfig(tokens="spm", zh_tokens="char")
    assert (cfg.zh_tokens, cfg.en_tokens, cfg.uses_spm) == ("char", "spm", True)
    assert not DataConfig().uses_spm
    for bad in ({"tokens": "bpe"}, {"en_tokens": "char"}, {"spm_vocab": 0}, {"zh_tokens": "sp"}):
        with pytest.raises(ConfigError):
            DataConfig(**bad)


def spm_cfg(**kw) -> DataConfig:
    return DataConfig(source="parallel", src_path=str(DATA / "tiny.zh"),
                      trg_path=str(DATA / "tiny.en"), spm_vocab=60, **kw)


def test_spm_is_trained_on_the_training_split_only():
    cfg = spm_cfg(tokens="spm", valid_frac=0.2, test_frac=0.2)
    data = prepare_data(cfg, read_parallel(DATA / "tiny.zh", DATA / "tiny.en"))
    assert isinstance(data.src_vocab, SubwordVocab) and isinstance(data.trg_vocab, SubwordVocab)
    train_chars = {ch for zh, _ in data.splits.train for ch in zh}
    held_out = {ch for zh, _ in data.splits.valid + data.splits.test for ch in zh} - train_chars
    assert held_out, "the tiny corpus has characters outside its training split"
    assert not held_out & {ch for piece in data.src_vocab.itos for ch in piece}
    test_ids = [int(i) for src, _ in data.test for i in src]
    assert Vocab.unk_id not in test_ids  # held-out characters are bytes, not <unk>
    # the English side learned lower-cased text; the truecaser still learns the usual case
    assert all(p == p.lower() for p in data.trg_vocab.itos[4 + N_BYTE_PIECES:])
    assert data.truecaser is not None


def test_a_spm_translator_needs_only_its_checkpoint(tmp_path):
    from conftest import train_tiny

    cfg = spm_cfg(tokens="spm", valid_frac=0.0, test_frac=0.0, min_freq=1)
    data = prepare_data(cfg, read_parallel(DATA / "tiny.zh", DATA / "tiny.en"))
    data.valid = data.train
    model, _, info, _ = train_tiny(cfg, data, epochs=8)
    tr = Translator(model, data.src_vocab, data.trg_vocab, cfg, info.model_cfg, "cpu",
                    data.truecaser, "fp32")
    sentences = ["我喜欢学习。", "今天很冷。", "龘靐齉爩。"]  # the last: characters never seen
    before = tr.translate_batch(sentences)
    assert not any("⁇" in out for out in before)
    tr.save(tmp_path / "spm.pt")
    loaded = Translator.from_checkpoint(tmp_path / "spm.pt", precision="fp32")
    assert isinstance(loaded.src_vocab, SubwordVocab) and loaded.src_vocab.model == data.src_vocab.model
    assert loaded.trg_vocab.model == data.trg_vocab.model
    assert loaded.translate_batch(sentences) == before
    assert loaded.src_tokens("龘。")[0].startswith("▁") or loaded.src_tokens("龘。")[0].startswith("<0x")


def test_word_settings_refuse_a_subword_vocabulary(en_spm):
    from seq2seq_lib.tokenize import check_tokens

    with pytest.raises(ValueError, match="English tokens 'word' do not fit a SentencePiece"):
        check_tokens(DataConfig(), Vocab(list(SPECIALS)), en_spm)
    with pytest.raises(ValueError, match="Chinese tokens 'spm' do not fit a word"):
        check_tokens(DataConfig(zh_tokens="spm"), Vocab(list(SPECIALS)), Vocab(list(SPECIALS)))


def test_a_cache_without_subwords_keeps_its_identity():
    """The new settings change no hash of a cache built without them."""
    from seq2seq_lib.cache import cache_hash, cache_settings

    inputs = [{"role": "hsk", "size": 1, "sha256": "x"}]
    settings = cache_settings(DataConfig())
    old = {k: v for k, v in settings.items() if k not in ("en_tokens", "tokens", "spm_vocab")}
    assert cache_hash(inputs, settings) == cache_hash(inputs, old)
    assert cache_hash(inputs, settings) != cache_hash(inputs, cache_settings(DataConfig(en_tokens="spm")))
    spm = cache_settings(DataConfig(en_tokens="spm"))
    assert cache_hash(inputs, spm) != cache_hash(inputs, {**spm, "spm_vocab": 100})


def test_chrf_and_its_paired_bootstrap_agree_with_sacrebleu():
    from sacrebleu.metrics import CHRF

    from seq2seq_lib.metrics import corpus_chrf, paired_bootstrap_chrf

    refs = ["The cat sat on the mat.", "He likes tea.", "We go to school.", "It is cold."]
    a = ["the cat sat on a mat", "he like tea", "we went to school", "it is cold"]
    b = ["The cat sat on the mat.", "He likes tea.", "we go to school", "it cold"]
    assert corpus_chrf(b, refs) == pytest.approx(CHRF().corpus_score(b, [refs]).score)
    diff = paired_bootstrap_chrf(a, b, refs, samples=200)
    assert diff.bleu_a == pytest.approx(corpus_chrf(a, refs))
    assert diff.delta == pytest.approx(corpus_chrf(b, refs) - corpus_chrf(a, refs))
    assert diff.low <= diff.delta <= diff.high
    same = paired_bootstrap_chrf(a, a, refs, samples=50)
    assert (same.delta, same.low, same.high) == (0.0, 0.0, 0.0)


def test_the_summary_says_which_side_is_sentencepiece():
    data = prepare_data(spm_cfg(en_tokens="spm", zh_tokens="char"),
                        read_parallel(DATA / "tiny.zh", DATA / "tiny.en"))
    assert f"{len(data.src_vocab)} Chinese / {len(data.trg_vocab)} English SentencePiece tokens" in data.summary()
