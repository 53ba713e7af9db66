"""``train --resume`` of a checkpoint trained on a preprocessed cache: it reads that cache again
(checked by hash), never the text files re-split by shuffle; a cache that is gone is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from seq2seq_lib.cache import load_cache
from seq2seq_lib.checkpoint import load_checkpoint
from seq2seq_lib.cli import main

DATA = Path(__file__).parent / "data"
SMALL = ["--emb-dim", "8", "--hid-dim", "8", "--n-layers", "1", "--quiet", "--valid-bleu-sample", "2"]


@pytest.fixture()
def cache_run(tmp_path, capsys):
    """A tiny cache and a checkpoint trained on it for one epoch."""
    cache, ckpt = tmp_path / "cache", tmp_path / "m.pt"
    assert main(["preprocess", "--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en"),
                 "--out", str(cache), "--min-freq", "1", "--valid-frac", "0.2", "--test-frac", "0.2",
                 "--workers", "1", "--quiet"]) == 0
    assert main(["train", "--data-dir", str(cache), "--epochs", "1", *SMALL, "--out", str(ckpt)]) == 0
    capsys.readouterr()
    return cache, ckpt


def test_a_resume_reads_the_cache_it_was_trained_on(cache_run, capsys):
    cache, ckpt = cache_run
    assert main(["train", "--resume", str(ckpt.with_suffix(".last.pt")), "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {cache}" in out and "(opened in" in out and "tokenized" not in out
    saved = load_checkpoint(ckpt.with_suffix(".last.pt"))
    assert saved["info"].data_cfg.cache_hash == load_cache(cache).cache_hash
    assert [int(h["epoch"]) for h in saved["history"]] == [1, 2]


def test_a_resume_whose_cache_is_gone_is_refused_with_one_line(cache_run, capsys, tmp_path):
    cache, ckpt = cache_run
    moved = tmp_path / "moved"
    shutil.move(cache, moved)
    assert main(["train", "--resume", str(ckpt), "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: this checkpoint was trained on the cache {cache}, which is not there "
                   "any more: give its new place with --data-dir"]
    assert main(["train", "--resume", str(ckpt), "--epochs", "2", "--quiet", "--data-dir", str(moved)]) == 0


def test_a_resume_on_another_cache_is_refused(cache_run, capsys, tmp_path):
    _, ckpt = cache_run
    other = tmp_path / "other"
    assert main(["preprocess", "--tsv", str(DATA / "tiny.tsv"), "--out", str(other), "--workers", "1",
                 "--quiet", "--min-freq", "1", "--valid-frac", "0.3", "--test-frac", "0.3"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(ckpt), "--epochs", "2", "--quiet", "--data-dir", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {other} holds another cache")


def test_data_settings_that_contradict_the_cache_are_refused(cache_run, capsys, tmp_path):
    cache, _ = cache_run
    assert main(["train", "--data-dir", str(cache), "--min-freq", "3", "--out", str(tmp_path / "x.pt")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --min-freq 3 does not match the cache {cache} (min_freq=1): preprocess again to "
        "change it")


def test_preprocess_draws_no_progress_bar_into_a_log(tmp_path, capsys):
    """Standard error is not a terminal here: no bar, no carriage returns."""
    assert main(["preprocess", "--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en"),
                 "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    shown = capsys.readouterr()
    assert "cache written" in shown.out and "\r" not in shown.err + shown.out
