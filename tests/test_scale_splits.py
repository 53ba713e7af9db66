"""Held-out splits that scale: ``valid_max`` / ``test_max`` cap the pairs held out of a large
corpus (about 5,000 each by default), while a small corpus keeps its fractions; the in-memory
split and the cache's hash split both apply them."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from conftest import TINY_MODEL

from seq2seq_lib import DataConfig, prepare_data, split_pairs
from seq2seq_lib.cache import build_cache, load_cache
from seq2seq_lib.config import ConfigError
from seq2seq_lib.data import held_out_fractions, split_of


def test_the_defaults_hold_out_about_five_thousand_pairs_each():
    cfg = DataConfig()
    assert (cfg.valid_max, cfg.test_max) == (5_000, 5_000)
    valid, test = held_out_fractions(10_000_000, cfg.valid_frac, cfg.test_frac, cfg.valid_max,
                                     cfg.test_max)
    assert (round(valid * 10_000_000), round(test * 10_000_000)) == (5_000, 5_000)
    # a small corpus keeps its fractions, and no cap keeps them too
    assert held_out_fractions(20_000, 0.05, 0.1, 5_000, 5_000) == (0.05, 0.1)
    assert held_out_fractions(10**9, 0.05, 0.1, None, None) == (0.05, 0.1)
    assert held_out_fractions(None, 0.05, 0.1, 10, 10) == (0.05, 0.1)


def test_the_hash_split_of_a_large_corpus_holds_out_about_the_cap():
    fractions = held_out_fractions(200_000, 0.05, 0.05, 1_000, 2_000)
    counts = Counter(split_of(n, 0, *fractions) for n in range(1, 200_001))
    assert 900 <= counts["valid"] <= 1_100 and 1_850 <= counts["test"] <= 2_150


def test_the_in_memory_split_caps_exactly():
    pairs = [(f"中{i}", f"en {i}") for i in range(1_000)]
    capped = split_pairs(pairs, 0.1, 0.2, seed=1, valid_max=7, test_max=30)
    assert (len(capped.valid), len(capped.test), len(capped.train)) == (7, 30, 963)
    small = split_pairs(pairs[:100], 0.1, 0.2, seed=1, valid_max=70, test_max=30)
    assert (len(small.valid), len(small.test)) == (10, 20)  # below the caps: the fractions


def test_prepare_data_applies_the_caps(tiny_corpus):
    cfg = DataConfig(source="parallel", src_path="x", trg_path="y", valid_frac=0.2,
                     test_frac=0.2, min_freq=1)
    assert len(prepare_data(cfg, tiny_corpus).splits.valid) == 4
    data = prepare_data(replace(cfg, valid_max=1, test_max=2), tiny_corpus)
    assert (len(data.splits.valid), len(data.splits.test), len(data.splits.train)) == (1, 2, 17)


def test_a_cache_of_a_large_stream_holds_out_about_the_cap(tmp_path):
    pairs = [(f"我有{i}个苹果", f"I have {i} apples") for i in range(1, 1_001)]
    cfg = DataConfig(valid_frac=0.2, test_frac=0.2, valid_max=10, test_max=30, zh_tokens="char",
                     min_freq=1)
    result = build_cache(iter(pairs), tmp_path / "c", cfg, total=len(pairs), progress=False)
    splits = result.manifest["splits"]
    assert 3 <= splits["valid"] <= 20 and 15 <= splits["test"] <= 45, splits  # not 200 each
    assert result.manifest["held_out_fractions"] == {"valid": 0.01, "test": 0.03}
    data = load_cache(tmp_path / "c")
    assert len(data.pairs("valid")) == splits["valid"]
    assert data.data_config().valid_max == 10


@pytest.mark.parametrize("field", ["valid_max", "test_max"])
def test_a_cap_below_one_is_refused(field):
    with pytest.raises(ConfigError, match=f"{field} must be at least 1"):
        DataConfig(**{field: 0})


def test_a_checkpoint_from_before_the_caps_keeps_its_uncapped_split(tiny_data, tmp_path):
    """Resuming a run trained before ``valid_max`` existed re-splits its corpus as it was
    split then (uncapped), not with the new default of 5,000."""
    import torch

    from seq2seq_lib import TrainConfig, load_checkpoint, save_checkpoint
    from seq2seq_lib.checkpoint import CheckpointInfo

    data_cfg, data = tiny_data
    info = CheckpointInfo(data.src_vocab, data.trg_vocab, data_cfg, TINY_MODEL)
    path = tmp_path / "old.pt"
    save_checkpoint(path, {"w": torch.zeros(1)}, info, TrainConfig(), [], 1)
    raw = torch.load(path, weights_only=True)
    for key in ("valid_max", "test_max"):
        del raw["data_cfg"][key]
    torch.save(raw, path)
    old = load_checkpoint(path)["info"].data_cfg
    assert (old.valid_max, old.test_max) == (None, None)
    assert load_checkpoint(path)["info"].data_cfg.valid_frac == data_cfg.valid_frac
