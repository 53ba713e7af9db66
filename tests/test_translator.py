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
