from pathlib import Path

import pytest

from seq2seq_lib import detokenize_en, load_hsk, load_user_dict, tokenize_en, tokenize_zh

DATA = Path(__file__).parent / "data"


def test_jieba_precise_mode():
    assert tokenize_zh("我喜欢学习。") == ["我", "喜欢", "学习", "。"]


def test_modes_differ_as_documented():
    text = "我来到北京清华大学"
    precise = tokenize_zh(text)
    full = tokenize_zh(text, mode="full")
    search = tokenize_zh(text, mode="search")
    assert "清华大学" in precise
    assert {"清华", "华大", "大学"} <= set(full)  # overlapping dictionary words
    assert {"清华", "大学", "清华大学"} <= set(search)
    assert tokenize_zh("你好", mode="char") == ["你", "好"]
    with pytest.raises(ValueError, match="unknown jieba mode"):
        tokenize_zh(text, mode="fast")  # type: ignore[arg-type]


def test_user_dictionary_keeps_terms_whole():
    load_user_dict(DATA / "userdict.txt")
    assert "机器学习" in tokenize_zh("我喜欢学习机器学习。")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_user_dict(DATA / "missing.txt")


def test_english_tokenizer_splits_clitics_and_lowercases():
    assert tokenize_en("I don't like coffee.") == ["i", "do", "n't", "like", "coffee", "."]
    assert tokenize_en("Hello, Teacher!", lowercase=False) == ["Hello", ",", "Teacher", "!"]


def test_detokenizer_inverts_the_tokenizer_on_the_corpus():
    sentences = [en for _, en in load_hsk().pairs]
    same = sum(detokenize_en(tokenize_en(s, lowercase=False)) == s for s in sentences)
    assert same / len(sentences) > 0.97


def test_detokenizer_capitalizes_lowercased_output():
    assert detokenize_en(["i", "think", "i", "'m", "late", "."], capitalize=True) == "I think I'm late."
    assert detokenize_en(["he", "said", '"', "hi", '"', "."]) == 'he said "hi".'
