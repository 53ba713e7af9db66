import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def run(*args, stdin=None, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "seq2seq_lib", *args], capture_output=True,
                          text=True, input=stdin, timeout=300, cwd=cwd,
                          env=None if env is None else {**os.environ, **env})


def run_bytes(*args, stdin: bytes = b"", env=None):
    """The command with bytes in and bytes out (to see the encodings)."""
    return subprocess.run([sys.executable, "-m", "seq2seq_lib", *args], capture_output=True,
                          input=stdin, timeout=300, env={**os.environ, **(env or {})})


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
    assert "--config" in r.stdout and "--loader-workers" in r.stdout and "--workers" not in r.stdout
    r = run("preprocess", "--help")
    assert "--workers" in r.stdout and "tokenizer processes" in r.stdout


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
    from seq2seq_lib import load_checkpoint, run_history

    out = tmp_path / "resumed.pt"
    r = run("train", "--resume", str(checkpoint), "--epochs", "3", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    before, after = load_checkpoint(checkpoint), load_checkpoint(out)
    assert after["src_vocab"] == before["src_vocab"] and after["trg_vocab"] == before["trg_vocab"]
    assert after["model_cfg"] == before["model_cfg"] and after["data_cfg"] == before["data_cfg"]
    assert [int(h["epoch"]) for h in run_history(out)] == [1, 2, 3]


def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint", encoding="utf-8")
    r = _train_small(tmp_path / "x.pt", "--resume", str(notes))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith(f"error: {notes}: not a readable checkpoint")


def settings_of(*argv):
    """The (data, model, train) configs that ``train ARGV`` would run with (nothing is read)."""
    from seq2seq_lib.cli import build_parser
    from seq2seq_lib.cli.train import plan

    p = plan(build_parser().parse_args(["train", *argv]))
    return p.data_cfg, p.model_cfg, p.train_cfg


def test_demo_preset_sets_defaults_and_flags_still_win():
    from seq2seq_lib.config import demo_configs

    data_cfg, model_cfg, train_cfg = demo_configs()
    lesson_data, lesson_model, lesson_train = settings_of()
    assert (lesson_model.attention, lesson_data.zh_tokens, lesson_model.n_layers) == ("none", "word", 2)
    assert lesson_train.valid_bleu_sample == 500  # the command line's own default
    demo_data, demo_model, demo_train = settings_of("--preset", "demo")
    assert (demo_model.attention, demo_data.zh_tokens, demo_model.bidirectional) == (
        model_cfg.attention, data_cfg.zh_tokens, model_cfg.bidirectional)
    assert (demo_train.epochs, demo_train.lr, demo_data.min_freq) == (
        train_cfg.epochs, train_cfg.lr, data_cfg.min_freq)
    assert settings_of("--preset", "demo", "--epochs", "3")[2].epochs == 3


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


# ---------------------------------------------------------------- translate and evaluate


def test_blank_lines_and_arguments_come_back_blank(checkpoint):
    """White space, a zero-width space or a byte-order mark alone is nothing to translate."""
    r = run("translate", "--checkpoint", str(checkpoint), "   ", "\u200b", "我喜欢学习。")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["", ""] and r.stdout.splitlines()[2]
    r = run("translate", "--checkpoint", str(checkpoint), stdin="\u200b\n你好\n \u3000\n\ufeff\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "" and lines[1] and lines[2:] == ["", "", ""]


def test_invalid_utf8_on_standard_input_names_the_line(checkpoint):
    r = run_bytes("translate", "--checkpoint", str(checkpoint), stdin="你好\n".encode() + b"\xff\xfe\n")
    assert r.returncode == 2
    assert r.stderr.decode().strip() == ("error: standard input:2: not valid UTF-8 "
                                         "(byte 0xff at column 1)")


def test_a_bad_line_deep_in_a_file_is_named_by_its_number(checkpoint, tmp_path):
    src = tmp_path / "in.zh"
    src.write_bytes("你好\n".encode() * 2000 + b"\xe4\xbd\n" + "你好\n".encode() * 10)
    r = run("translate", "--checkpoint", str(checkpoint), "--input", str(src), "--chunk", "10000")
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {src}:2001: not valid UTF-8 (byte 0xe4 at column 1)"


@pytest.mark.parametrize("flag, value", [("--max-len", "-1"), ("--max-len", "0"), ("--chunk", "0")])
def test_translate_refuses_senseless_lengths_with_one_line(checkpoint, flag, value):
    r = run("translate", "--checkpoint", str(checkpoint), flag, value, "你好")
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {flag} must be at least 1, got {value}"


def test_translate_and_evaluate_take_a_device(checkpoint):
    r = run("translate", "--checkpoint", str(checkpoint), "--device", "cpu", "你好")
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    r = run("evaluate", "--checkpoint", str(checkpoint), "--device", "cpu", "--examples", "0")
    assert r.returncode == 0 and "perplexity" in r.stdout, r.stderr
    for command in (["translate", "你好"], ["evaluate"]):
        r = run(*command, "--checkpoint", str(checkpoint), "--device", "gpu7")
        assert r.returncode == 2
        assert r.stderr.strip() == "error: --device gpu7: use auto, cpu, cuda, cuda:N or mps"


@pytest.fixture(scope="module")
def unk_checkpoint(checkpoint, tmp_path_factory):
    """The tiny model made to answer <unk> to everything: its output is all ⁇."""
    import torch

    from seq2seq_lib import Translator

    tr = Translator.from_checkpoint(checkpoint)
    with torch.no_grad():
        tr.model.decoder.fc_out.bias[tr.trg_vocab.unk_id] = 1e4
    return tr.save(tmp_path_factory.mktemp("unk") / "unk.pt")


def test_a_windows_code_page_does_not_break_chinese_or_unknown_words(checkpoint, unk_checkpoint):
    """PYTHONIOENCODING=cp1252 (a Windows console redirected to a file) cannot encode ⁇ or
    Chinese; the command line writes UTF-8 whatever the locale, and reads UTF-8 too."""
    cp1252 = {"PYTHONIOENCODING": "cp1252"}
    r = run_bytes("translate", "--checkpoint", str(unk_checkpoint), stdin="我喜欢学习。\n".encode(),
                  env=cp1252)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert "\u2047" in r.stdout.decode("utf-8")
    r = run_bytes("evaluate", "--checkpoint", str(checkpoint), "--examples", "1", env=cp1252)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.stdout.decode("utf-8"))


# ---------------------------------------------------------------- train: outputs and resumes


def test_every_validation_goes_to_jsonl_and_csv_beside_the_checkpoint(checkpoint):
    import csv

    from seq2seq_lib import load_checkpoint

    jsonl, table = checkpoint.with_suffix(".metrics.jsonl"), checkpoint.with_suffix(".metrics.csv")
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    history = load_checkpoint(checkpoint.with_suffix(".last.pt"))["history"]
    assert [r["epoch"] for r in records] == [1, 2] == [int(h["epoch"]) for h in history]
    assert [r["valid_loss"] for r in records] == pytest.approx([h["valid_loss"] for h in history])
    assert {"step", "train_loss", "valid_ppl", "valid_bleu", "lr", "tokens_per_s"} <= records[0].keys()
    with table.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [r["step"] for r in records]
    assert [float(r["valid_bleu"]) for r in rows] == pytest.approx([r["valid_bleu"] for r in records])


def test_a_resume_writes_where_its_checkpoint_came_from(tmp_path):
    """--resume X.last.pt goes on writing X.pt and X.last.pt (not checkpoints/model.pt), and
    appends to X.metrics.jsonl; --out still says otherwise."""
    from seq2seq_lib import load_checkpoint

    out = tmp_path / "demo.pt"
    r = _train_small(out, "--valid-bleu-sample", "0")
    assert r.returncode == 0, r.stderr
    r = run("train", "--resume", str(tmp_path / "demo.last.pt"), "--epochs", "2", "--quiet",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "checkpoints").exists()
    assert [int(h["epoch"]) for h in load_checkpoint(tmp_path / "demo.last.pt")["history"]] == [1, 2]
    assert load_checkpoint(out)["trainer_state"]["step"] > 0
    lines = (tmp_path / "demo.metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    other = tmp_path / "other.pt"
    r = run("train", "--resume", str(out), "--epochs", "2", "--quiet", "--out", str(other))
    assert r.returncode == 0, r.stderr
    assert other.exists() and (tmp_path / "other.last.pt").exists()


def test_held_out_splits_too_small_are_refused_with_one_line():
    r = run("train", "--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en"), "--limit", "10",
            "--quiet", "--out", "never.pt")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: --valid-frac 0.05 of 10 pairs leaves the valid split empty: "
                                "use a larger --limit or a larger --valid-frac")
