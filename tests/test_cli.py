import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "seq2seq_lib", *args], capture_output=True,
                          text=True, input=stdin, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "m.pt"
    r = run("train", "--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en"),
            "--epochs", "2", "--emb-dim", "16", "--hid-dim", "16", "--n-layers", "1",
            "--min-freq", "1", "--quiet", "--out", str(out), "--plot", str(out.with_suffix(".png")))
    assert r.returncode == 0, r.stderr
    assert "test BLEU" in r.stdout and "我喜欢学习机器学习。 →" in r.stdout
    assert out.with_suffix(".png").stat().st_size > 1000
    return out


def test_help_explains_every_command():
    r = run("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in ("train", "translate", "evaluate"))
    r = run("train", "--help")
    assert "--teacher-forcing" in r.stdout and "--tsv" in r.stdout and "--resume" in r.stdout


def test_translate_arguments_and_stdin(checkpoint):
    r = run("translate", "--checkpoint", str(checkpoint), "我喜欢学习。", "你好吗？")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 2
    r = run("translate", "--checkpoint", str(checkpoint), stdin="我喜欢学习。\n\n他是老师。\n")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 2


def test_evaluate_prints_bleu_and_perplexity(checkpoint):
    r = run("evaluate", "--checkpoint", str(checkpoint), "--examples", "1")
    assert r.returncode == 0, r.stderr
    assert "perplexity" in r.stdout and "BLEU" in r.stdout and "tok:13a" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["translate", "--checkpoint", "nowhere.pt", "你好"], "nowhere.pt: checkpoint not found"),
    (["train", "--src", str(DATA / "tiny.zh"), "--trg", "missing.en"], "missing.en: file not found"),
    (["train", "--src", str(DATA / "tiny.zh")], "--src and --trg must be given together"),
    (["train", "--tsv", str(DATA / "tiny.zh")], "tiny.zh:1: no tab found"),
])
def test_bad_input_exits_nonzero_with_one_line(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {message}" or message in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr


def test_empty_sentence_is_a_clean_error(checkpoint):
    r = run("translate", "--checkpoint", str(checkpoint), "   ")
    assert r.returncode == 2 and "empty sentence" in r.stderr and "Traceback" not in r.stderr


def test_demo_preset_sets_defaults_and_flags_still_win():
    from seq2seq_lib.cli import _parse
    from seq2seq_lib.config import demo_configs

    data_cfg, model_cfg, train_cfg = demo_configs()
    lesson = _parse(["train"])
    assert (lesson.attention, lesson.zh_tokens, lesson.n_layers) == ("none", "word", 2)
    demo = _parse(["train", "--preset", "demo"])
    assert (demo.attention, demo.zh_tokens, demo.bidirectional) == (
        model_cfg.attention, data_cfg.zh_tokens, model_cfg.bidirectional)
    assert (demo.epochs, demo.lr, demo.min_freq) == (train_cfg.epochs, train_cfg.lr, data_cfg.min_freq)
    assert _parse(["train", "--preset", "demo", "--epochs", "3"]).epochs == 3


def test_char_tokens_reach_the_checkpoint(tmp_path):
    out = tmp_path / "c.pt"
    r = run("train", "--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en"),
            "--zh-tokens", "char", "--attention", "bahdanau", "--bidirectional", "--epochs", "1",
            "--emb-dim", "8", "--hid-dim", "8", "--n-layers", "1", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    from seq2seq_lib import Translator

    tr = Translator.from_checkpoint(out)
    assert tr.data_cfg.zh_tokens == "char" and tr.model_cfg.attention == "bahdanau"
