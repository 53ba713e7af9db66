from dataclasses import replace

import pytest
from conftest import DATA

from seq2seq_lib import Translator
from seq2seq_lib.builders import build_model
from seq2seq_lib.config import DataConfig, ModelConfig
from seq2seq_lib.pipeline import prepare_data, sample_pairs, tokenize_pairs


def parallel_cfg(**kw) -> DataConfig:
    return DataConfig(source="parallel", src_path=str(DATA / "tiny.zh"),
                      trg_path=str(DATA / "tiny.en"), min_freq=1, **kw)


def test_word_and_char_tokens():
    pairs = [("我喜欢学习。", "I like studying.")]
    words, en = tokenize_pairs(pairs)
    chars, _ = tokenize_pairs(pairs, zh_tokens="char")
    assert words == [["我", "喜欢", "学习", "。"]]
    assert chars == [["我", "喜", "欢", "学", "习", "。"]]
    assert en == [["i", "like", "studying", "."]]
    with pytest.raises(ValueError, match="zh_tokens='chars'"):
        tokenize_pairs(pairs, zh_tokens="chars")


def test_char_vocabulary_is_built_from_characters(tiny_corpus):
    data = prepare_data(parallel_cfg(zh_tokens="char"), tiny_corpus)
    assert all(len(tok) == 1 for tok in data.src_vocab.itos[4:])
    assert "喜" in data.src_vocab and "喜欢" not in data.src_vocab


def test_translator_tokenizes_new_sentences_as_it_was_trained(tiny_corpus, tmp_path):
    data_cfg = parallel_cfg(zh_tokens="char")
    data = prepare_data(data_cfg, tiny_corpus)
    model = build_model(ModelConfig(emb_dim=8, hid_dim=8, n_layers=1), len(data.src_vocab),
                        len(data.trg_vocab))
    tr = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, ModelConfig(8, 8, 1))
    assert tr.src_tokens("我喜欢猫") == ["我", "喜", "欢", "猫"]
    loaded = Translator.from_checkpoint(tr.save(tmp_path / "c.pt"))
    assert loaded.data_cfg.zh_tokens == "char"
    assert loaded.src_tokens("我喜欢猫") == ["我", "喜", "欢", "猫"]


def test_translator_loads_the_user_dictionary(tiny_corpus, tmp_path):
    user_dict = tmp_path / "dict.txt"
    user_dict.write_text("猫咪老师 10\n", encoding="utf-8")
    data_cfg = replace(parallel_cfg(), user_dict=str(user_dict))
    data = prepare_data(parallel_cfg(), tiny_corpus)
    model = build_model(ModelConfig(emb_dim=8, hid_dim=8, n_layers=1), len(data.src_vocab),
                        len(data.trg_vocab))
    tr = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, ModelConfig(8, 8, 1))
    assert "猫咪老师" in tr.src_tokens("猫咪老师来了。")


def test_sample_pairs_is_seeded_and_keeps_order():
    pairs = [(str(i), str(i)) for i in range(100)]
    a, b = sample_pairs(pairs, 10, seed=1), sample_pairs(pairs, 10, seed=1)
    assert a == b and len(a) == 10
    assert [int(x) for x, _ in a] == sorted(int(x) for x, _ in a)
    assert sample_pairs(pairs, None) is pairs


def test_held_out_splits_too_small_are_refused(tiny_corpus):
    """10 pairs at 5 %: no valid and no test pair; validation would score nothing (bug 5)."""
    from seq2seq_lib.config import ConfigError

    with pytest.raises(ConfigError, match="valid_frac 0.05 of 10 pairs leaves the valid split "
                                          "empty: use a larger limit or a larger valid_frac"):
        prepare_data(parallel_cfg(limit=10), tiny_corpus)
    with pytest.raises(ConfigError, match="test_frac 0.01 of 20 pairs leaves the test split empty: "
                                          "use a larger corpus"):
        prepare_data(parallel_cfg(valid_frac=0.2, test_frac=0.01), tiny_corpus)
    data = prepare_data(parallel_cfg(valid_frac=0.0, test_frac=0.2), tiny_corpus)  # asked for none
    assert len(data.splits.valid) == 0 and len(data.splits.test) == 4
