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
    assert "· precision: " in r.stdout  # the banner says which precision runs and why
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
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[0] and lines[1] == "" and lines[2]


def test_a_file_is_translated_in_chunks_one_line_per_input_line(checkpoint, tmp_path):
    """Blank lines stay blank, so the output lines up with the input and with references."""
    sentences = ["我喜欢学习。", "", "他是老师。", "你好吗？", "  ", "我喜欢学习。", "他是老师。"]
    src = tmp_path / "in.zh"
    src.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    r = run("translate", "--checkpoint", str(checkpoint), "--input", str(src), "--chunk", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(sentences)
    assert [bool(x) for x in lines] == [bool(s.strip()) for s in sentences]
    one_by_one = run("translate", "--checkpoint", str(checkpoint), *[s for s in sentences if s.strip()])
    assert [x for x in lines if x] == one_by_one.stdout.splitlines()


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


@pytest.mark.parametrize("flag, value, message", [
    ("--epochs", "0", "--epochs must be at least 1, got 0"),
    ("--lr", "-1", "--lr must be positive, got -1.0"),
    ("--batch-size", "0", "--batch-size must be at least 1, got 0"),
    ("--dropout", "1.5", "--dropout must be in [0, 1), got 1.5"),
    ("--teacher-forcing", "2", "--teacher-forcing must be between 0 and 1, got 2.0"),
    ("--limit", "0", "--limit must be at least 1, got 0"),
    ("--valid-every", "-1", "--valid-every must be 0 (per epoch) or positive, got -1"),
    ("--patience", "-2", "--patience must be 0 (off) or more, got -2"),
    ("--max-minutes", "0", "--max-minutes must be positive, got 0.0"),
    ("--lr-factor", "1.5", "--lr-factor must be between 0 and 1, got 1.5"),
])
def test_senseless_settings_are_refused_before_any_data_is_read(flag, value, message):
    # the corpus file does not exist: the setting must be refused before anything is read
    r = run("train", "--src", "missing.zh", "--trg", "missing.en", flag, value)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {message}"


def _train_small(out, *extra):
    return run("train", "--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en"),
               "--epochs", "1", "--emb-dim", "16", "--hid-dim", "16", "--n-layers", "1",
               "--min-freq", "1", "--quiet", "--out", str(out), *extra)


@pytest.mark.parametrize("flag, value", [("--seed", "7"), ("--limit", "10"), ("--min-freq", "2"),
                                         ("--hid-dim", "32")])
def test_resume_refuses_flags_that_contradict_the_checkpoint(checkpoint, tmp_path, flag, value):
    r = _train_small(tmp_path / "r.pt", "--resume", str(checkpoint), flag, value)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: {flag} ") and "does not match" in line
    assert not (tmp_path / "r.pt").exists()


def test_resume_takes_vocabularies_and_settings_from_the_checkpoint(checkpoint, tmp_path):
    """Flags left out come from the checkpoint, not from the defaults (min_freq 2, hid 512)."""
    from seq2seq_lib import load_checkpoint

    out = tmp_path / "resumed.pt"
    r = run("train", "--resume", str(checkpoint), "--epochs", "3", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    before, after = load_checkpoint(checkpoint), load_checkpoint(out)
    assert after["src_vocab"] == before["src_vocab"] and after["trg_vocab"] == before["trg_vocab"]
    assert after["model_cfg"] == before["model_cfg"] and after["data_cfg"] == before["data_cfg"]
    assert [int(h["epoch"]) for h in after["history"]] == [1, 2, 3]


def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint", encoding="utf-8")
    r = _train_small(tmp_path / "x.pt", "--resume", str(notes))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith(f"error: {notes}: not a readable checkpoint")


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


def test_bleu_as_the_best_metric_needs_a_validation_bleu():
    r = run("train", "--src", "missing.zh", "--trg", "missing.en", "--best-metric", "bleu",
            "--valid-bleu-sample", "0")
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: --best-metric bleu needs a validation BLEU "
                                "(valid_bleu_sample > 0), got 0")


def test_validation_every_n_steps_and_a_resume_from_the_last_state(tmp_path):
    """20 pairs, batches of 4: 5 steps per epoch, validated at steps 2, 4 and 5; the last state
    lies beside --out, and resuming from it continues with step 6."""
    from seq2seq_lib import load_checkpoint

    out = tmp_path / "m.pt"
    r = _train_small(out, "--batch-size", "4", "--valid-every", "2", "--valid-bleu-sample", "3")
    assert r.returncode == 0, r.stderr
    logged = [line for line in r.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[3] for line in logged] == ["2", "4", "5"]
    assert all("BLEU" in line for line in logged)
    last = tmp_path / "m.last.pt"
    assert load_checkpoint(last)["trainer_state"]["step"] == 5
    r = run("train", "--resume", str(last), "--epochs", "2", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert [int(h["step"]) for h in load_checkpoint(last)["history"]] == [2, 4, 5, 6, 8, 10]
