"""Chinese script: Traditional characters written as Simplified (``DataConfig.zh_script``) in
training, in the cache and at translation; checkpoints and caches from before read as "keep"."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from conftest import TINY_MODEL

from seq2seq_lib import DataConfig, Translator, build_model, load_checkpoint, prepare_data
from seq2seq_lib.cache import build_cache, cache_hash, cache_settings, load_cache
from seq2seq_lib.config import ConfigError, from_dict
from seq2seq_lib.data import Corpus, load_hsk
from seq2seq_lib.script import pairs_in_script, to_script

# the same three sentences in each script, as a mixed corpus has them
TRADITIONAL = [("我們是學生。", "We are students."), ("這是我的書。", "This is my book."),
               ("他說話很快。", "He speaks fast.")]
SIMPLIFIED = [("我们是学生。", "We are students."), ("这是我的书。", "This is my book."),
              ("他说话很快。", "He speaks fast.")]
MIXED = (TRADITIONAL + SIMPLIFIED) * 5
CHAR_CFG = DataConfig(source="parallel", valid_frac=0.0, test_frac=0.0, min_freq=1,
                      zh_tokens="char")


def test_traditional_becomes_simplified_phrase_by_phrase():
    assert [to_script(zh, "simplified") for zh, _ in TRADITIONAL] == [zh for zh, _ in SIMPLIFIED]
    # phrases first: the emperor's name keeps 乾, a toast does not
    assert to_script("乾隆年間，大家乾杯！", "simplified") == "乾隆年间，大家干杯！"
    assert to_script("我們", "keep") == "我們"
    with pytest.raises(ValueError, match="zh_script='traditional': use 'keep' or 'simplified'"):
        to_script("我們", "traditional")
    with pytest.raises(ConfigError, match="zh_script"):
        DataConfig(zh_script="traditional")  # type: ignore[arg-type]


def test_simplified_text_punctuation_latin_and_digits_come_back_unchanged():
    """HSK is written in Simplified: every one of its sentences comes back as it was."""
    sentences = [zh for zh, _ in load_hsk().pairs]
    assert len(sentences) > 4000
    assert [to_script(s, "simplified") for s in sentences] == sentences
    other = "Hello, world! 3.14 ，。！？「」《》…—～ ＡＢＣ１２３ 😀"
    assert to_script(other, "simplified") == other


def test_both_scripts_count_as_one_vocabulary_and_encode_alike():
    merged = prepare_data(CHAR_CFG, Corpus(MIXED, "mixed"))
    kept = prepare_data(replace(CHAR_CFG, zh_script="keep"), Corpus(MIXED, "mixed"))
    assert {"們", "學", "這", "書", "說", "話"}.isdisjoint(merged.src_vocab.itos)
    assert {"們", "们", "學", "学"} <= set(kept.src_vocab.itos)
    assert len(kept.src_vocab) - len(merged.src_vocab) == 6
    sources = {tuple(merged.train[i][0].tolist()) for i in range(len(merged.train))}
    assert len(sources) == 3  # each Traditional sentence is its Simplified twin
    assert pairs_in_script(TRADITIONAL, "simplified") == SIMPLIFIED


def test_the_translator_reads_a_sentence_in_the_script_it_was_trained_in():
    data = prepare_data(CHAR_CFG, Corpus(MIXED, "mixed"))
    model = build_model(TINY_MODEL, len(data.src_vocab), len(data.trg_vocab))
    translator = Translator(model, data.src_vocab, data.trg_vocab, CHAR_CFG, TINY_MODEL,
                            torch.device("cpu"))
    assert translator.src_tokens("我們是學生。") == list("我们是学生。")
    assert data.src_vocab.unk_id not in translator.source_ids("這是我的書。").tolist()
    keep_cfg = replace(CHAR_CFG, zh_script="keep")
    keeping = Translator(model, data.src_vocab, data.trg_vocab, keep_cfg, TINY_MODEL,
                         torch.device("cpu"))
    assert keeping.src_tokens("我們") == ["我", "們"]


def test_a_checkpoint_from_before_the_setting_reads_its_chinese_as_written(tmp_path):
    data = prepare_data(CHAR_CFG, Corpus(MIXED, "mixed"))
    model = build_model(TINY_MODEL, len(data.src_vocab), len(data.trg_vocab))
    path = Translator(model, data.src_vocab, data.trg_vocab, CHAR_CFG, TINY_MODEL,
                      torch.device("cpu")).save(tmp_path / "m.pt")
    assert load_checkpoint(path)["info"].data_cfg.zh_script == "simplified"
    raw = torch.load(path, weights_only=True)
    del raw["data_cfg"]["zh_script"]
    torch.save(raw, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["info"].data_cfg.zh_script == "keep"
    # settings files without it (an earlier run's config.yaml) take today's default
    assert from_dict(DataConfig, {"zh_tokens": "char"}).zh_script == "simplified"


def test_a_cache_merges_the_scripts_and_an_older_cache_keeps_its_hash(tmp_path):
    result = build_cache(iter(MIXED), tmp_path / "c", CHAR_CFG, progress=False)
    cached = load_cache(result.path)
    assert cached.src_vocab.itos == prepare_data(CHAR_CFG, Corpus(MIXED, "x")).src_vocab.itos
    assert {"們", "學", "這", "書", "說", "話"}.isdisjoint(cached.src_vocab.itos)
    assert cached.data_config().zh_script == "simplified"
    # the hash of a cache whose Chinese is kept as written is the one it had before zh_script
    inputs = [{"role": "stream", "size": 1, "sha256": "0"}]
    keep = cache_settings(replace(CHAR_CFG, zh_script="keep"))
    before = {k: v for k, v in keep.items() if k != "zh_script"}
    assert cache_hash(inputs, keep) == cache_hash(inputs, before)
    assert cache_hash(inputs, cache_settings(CHAR_CFG)) != cache_hash(inputs, keep)
    # a manifest written before the setting existed reads as "keep"
    manifest_path = result.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    del manifest["settings"]["zh_script"]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    assert load_cache(result.path).data_config().zh_script == "keep"


def test_preprocess_takes_the_setting_and_train_keeps_to_the_cache(tmp_path, capsys):
    """Every data setting a cache is built with is a ``preprocess`` flag (zh_script was missing
    at first), and training on a cache refuses a script the cache was not built with."""
    from seq2seq_lib.cli import main
    from seq2seq_lib.cli.preprocess import CACHE_SETTINGS

    inputs = {"source", "src_path", "trg_path", "tsv_path"}
    assert set(CACHE_SETTINGS) == set(cache_settings(DataConfig())) - inputs
    zh, en = tmp_path / "c.zh", tmp_path / "c.en"
    zh.write_text("".join(z + "\n" for z, _ in MIXED), encoding="utf-8")
    en.write_text("".join(e + "\n" for _, e in MIXED), encoding="utf-8")
    cache = tmp_path / "cache"
    assert main(["preprocess", "--src", str(zh), "--trg", str(en), "--out", str(cache),
                 "--zh-script", "keep", "--zh-tokens", "char", "--min-freq", "1",
                 "--workers", "1", "--quiet"]) == 0
    assert load_cache(cache).data_config().zh_script == "keep"
    assert "們" in load_cache(cache).src_vocab.itos
    capsys.readouterr()
    assert main(["train", "--data-dir", str(cache), "--zh-script", "simplified",
                 "--out", str(tmp_path / "m.pt")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --zh-script simplified does not match the cache {cache} (zh_script='keep'): "
        "preprocess again to change it")
