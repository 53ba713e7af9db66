import pytest

from seq2seq_lib import Translator
from seq2seq_lib.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def translator(memorized, tiny_data):
    model, _, info = memorized
    data_cfg, data = tiny_data
    return Translator(model, data.src_vocab, data.trg_vocab, data_cfg, info.model_cfg)


def test_translates_memorized_sentences(translator):
    assert translator.translate("他是老师。") == "He is a teacher."
    assert translator.translate_batch(["我有一只猫。", "请坐。"]) == ["I have a cat.", "Please sit down."]


def test_checkpoint_round_trip_gives_identical_translations(translator, tmp_path, tiny_corpus):
    path = translator.save(tmp_path / "t.pt")
    loaded = Translator.from_checkpoint(path)
    sentences = [zh for zh, _ in tiny_corpus.pairs] + ["我喜欢学习机器学习。"]
    assert loaded.translate_batch(sentences) == translator.translate_batch(sentences)


def test_empty_input_is_refused(translator):
    for bad in ["", "   ", "\n"]:
        with pytest.raises(ValueError, match="empty sentence"):
            translator.translate(bad)


def test_unknown_words_become_unk(translator):
    tokens = translator.src_tokens("我喜欢量子力学。")
    ids = translator.src_vocab.encode(tokens)
    assert translator.src_vocab.unk_id in ids
    assert isinstance(translator.translate("我喜欢量子力学。"), str)


def test_bleu_on_memorized_pairs(translator, tiny_corpus):
    score, hyps = translator.bleu(tiny_corpus.pairs)
    assert score.score > 95
    assert len(hyps) == 20


def test_bad_checkpoint_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        Translator.from_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        Translator.from_checkpoint(junk)


def test_unknown_words_count_as_one_token_that_never_matches(translator):
    """``<unk>`` is written as ⁇: sacreBLEU's 13a tokenizer would split "<unk>" into three
    tokens (two of them punctuation that can match), inflating the output length."""
    from seq2seq_lib import corpus_bleu, detokenize_en

    unk = translator.trg_vocab.unk_id
    ids = [translator.trg_vocab[w] for w in ("he", "is", "a")] + [unk, translator.trg_vocab["."]]
    out = translator.detokenize(ids)
    assert out == "He is a ⁇."
    assert detokenize_en(["<unk>", "likes", "<unk>", "."], capitalize=True) == "⁇ likes ⁇."
    score = corpus_bleu([out], ["He is a teacher."], lowercase=True)
    assert score.sys_len == score.ref_len == 5  # ⁇ is one token, as "teacher" is
    assert score.counts[0] == 4  # he, is, a, "." match; ⁇ does not
    naive = corpus_bleu(["He is a <unk>."], ["He is a teacher."], lowercase=True)
    assert naive.sys_len == 7  # the artefact this avoids


def test_truecaser_restores_names_and_days(tiny_data):
    from seq2seq_lib import TrueCaser, detokenize_en

    tc = TrueCaser.fit([["Mary", "left", "on", "Sunday", "."], ["I", "met", "Mary", "."],
                        ["The", "cat", "sat", "."], ["We", "saw", "the", "cat", "."],
                        ["Paris", "is", "big", "."]])
    # sentence-initial words teach nothing: "The" stays "the", "Paris" was only seen first
    assert tc.forms == {"mary": "Mary", "sunday": "Sunday"}
    tokens = ["talk", "to", "mary", "on", "sunday", "in", "paris", "."]
    assert detokenize_en(tc.apply(tokens), capitalize=True) == "Talk to Mary on Sunday in paris."
    _, data = tiny_data
    assert data.truecaser is not None and all(k == k.lower() for k in data.truecaser.forms)


def test_truecaser_travels_in_the_checkpoint(memorized, tiny_data, tmp_path):
    from seq2seq_lib import TrueCaser

    model, _, info = memorized
    data_cfg, data = tiny_data
    tr = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, info.model_cfg,
                    truecaser=TrueCaser({"teacher": "Teacher"}))
    assert tr.translate("他是老师。") == "He is a Teacher."
    loaded = Translator.from_checkpoint(tr.save(tmp_path / "tc.pt"))
    assert loaded.truecaser.forms == {"teacher": "Teacher"}
    assert loaded.translate("他是老师。") == "He is a Teacher."


def test_case_sensitive_bleu_next_to_the_case_insensitive_one(translator, tiny_corpus):
    pairs = [(zh, en.upper()) for zh, en in tiny_corpus.pairs[:5]]
    insensitive, hyps = translator.bleu(pairs)
    cased, _ = translator.bleu(pairs, lowercase=False)
    assert insensitive.score == pytest.approx(100.0) and cased.score < 50
