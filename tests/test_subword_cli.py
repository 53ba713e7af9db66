"""``--tokens spm`` through the command line: train, then translate and evaluate with nothing but
the checkpoint; preprocess + train from the cache; --resume keeps the SentencePiece models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from seq2seq_lib.cache import load_cache, read_manifest
from seq2seq_lib.checkpoint import load_checkpoint
from seq2seq_lib.cli import main
from seq2seq_lib.subword import SubwordVocab

DATA = Path(__file__).parent / "data"
CORPUS = ["--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en")]
SMALL = ["--emb-dim", "8", "--hid-dim", "8", "--n-layers", "1", "--quiet", "--valid-bleu-sample", "2"]
SPM = ["--tokens", "spm", "--spm-vocab", "200"]


@pytest.fixture(scope="module")
def spm_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("spm") / "m.pt"
    assert main(["train", *CORPUS, *SPM, "--epochs", "1", *SMALL, "--valid-frac", "0.2",
                 "--test-frac", "0.2", "--out", str(out)]) == 0
    return out


def test_train_tokens_spm_stores_both_models_in_the_checkpoint(spm_checkpoint):
    info = load_checkpoint(spm_checkpoint)["info"]
    assert (info.data_cfg.zh_tokens, info.data_cfg.en_tokens, info.data_cfg.spm_vocab) == (
        "spm", "spm", 200)
    assert isinstance(info.src_vocab, SubwordVocab) and isinstance(info.trg_vocab, SubwordVocab)
    assert len(info.trg_vocab) <= 200 + 4 + 256
    assert "tokens: spm" in spm_checkpoint.with_name("m.config.yaml").read_text(encoding="utf-8")


def test_translate_and_evaluate_need_only_the_checkpoint(spm_checkpoint, tmp_path, capsys):
    alone = tmp_path / "alone" / "copy.pt"
    alone.parent.mkdir()
    shutil.copy(spm_checkpoint, alone)  # no other file beside it
    capsys.readouterr()
    assert main(["translate", "--checkpoint", str(alone), "--device", "cpu", "我喜欢学习。",
                 "龘靐齉爩。"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and not any("⁇" in line for line in out)
    assert main(["evaluate", "--checkpoint", str(alone), "--device", "cpu", "--examples", "1"]) == 0
    assert "perplexity" in capsys.readouterr().out


def test_preprocess_and_train_from_a_spm_cache(tmp_path, capsys):
    cache, ckpt = tmp_path / "cache", tmp_path / "c.pt"
    assert main(["preprocess", *CORPUS, *SPM, "--out", str(cache), "--valid-frac", "0.2",
                 "--test-frac", "0.2", "--workers", "2", "--quiet"]) == 0
    manifest = read_manifest(cache)
    assert set(manifest["spm"]) == {"src", "trg"} and "sentencepiece" in manifest["tokenizers"]
    data = load_cache(cache)
    assert isinstance(data.src_vocab, SubwordVocab) and isinstance(data.trg_vocab, SubwordVocab)
    assert main(["train", "--data-dir", str(cache), "--epochs", "1", *SMALL, "--out", str(ckpt)]) == 0
    info = load_checkpoint(ckpt)["info"]
    assert info.trg_vocab.model == data.trg_vocab.model and info.src_vocab.model == data.src_vocab.model
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ckpt), "--examples", "0"]) == 0
    assert f"({cache})" in capsys.readouterr().out
    # the same settings again: the cache is reused as it is
    assert main(["preprocess", *CORPUS, *SPM, "--out", str(cache), "--valid-frac", "0.2",
                 "--test-frac", "0.2", "--workers", "1"]) == 0
    assert "cache up to date" in capsys.readouterr().out


def test_resume_keeps_the_spm_models(spm_checkpoint, tmp_path):
    before = load_checkpoint(spm_checkpoint)["info"]
    out = tmp_path / "resumed.pt"
    last = spm_checkpoint.with_name("m.last.pt")
    assert main(["train", "--resume", str(last), "--epochs", "2", "--quiet", "--out", str(out)]) == 0
    after = load_checkpoint(out.with_name("resumed.last.pt"))
    assert [int(h["epoch"]) for h in after["history"]] == [1, 2]
    assert after["info"].src_vocab.model == before.src_vocab.model
    assert after["info"].trg_vocab.model == before.trg_vocab.model


def test_a_spm_vocabulary_too_small_for_its_characters_is_one_line(tmp_path, capsys):
    assert main(["train", *CORPUS, "--zh-tokens", "spm", "--spm-vocab", "5", "--epochs", "1",
                 *SMALL, "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--spm-vocab 5 is too small" in err[0] and "characters" in err[0]


def test_tokens_spm_under_torchrun(tmp_path):
    """Each process trains the same SentencePiece models on the same training split (the
    command line checks that every process has the same vocabularies); one writes them."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "m.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "seq2seq_lib", "train", *CORPUS, *SPM, "--epochs", "1", "--batch-size", "4",
         *SMALL, "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes (torchrun)" in proc.stdout and proc.stdout.count("test BLEU") == 1
    info = load_checkpoint(out)["info"]
    assert isinstance(info.src_vocab, SubwordVocab) and isinstance(info.trg_vocab, SubwordVocab)
