"""The Transformer through the command line: ``train --arch transformer`` (text files, a
preprocessed cache, torchrun), ``translate``, ``evaluate``, ``--resume``, ``--preset transformer``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq_lib.checkpoint import load_checkpoint
from seq2seq_lib.cli import main
from seq2seq_lib.cli.__init__ import build_parser
from seq2seq_lib.cli.train import plan
from seq2seq_lib.config import transformer_configs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
TEXT = ["--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en"), "--min-freq", "1"]
TINY = ["--arch", "transformer", "--d-model", "16", "--n-heads", "2", "--ff-dim", "32",
        "--n-layers", "1", "--dropout", "0.1", "--lr-schedule", "inverse_sqrt",
        "--warmup-steps", "4", "--label-smoothing", "0.1", "--quiet", "--valid-bleu-sample", "4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tf-cli") / "m.pt"
    assert main(["train", *TEXT, *TINY, "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_train_writes_a_self_describing_transformer_checkpoint(trained, capsys):
    ckpt = load_checkpoint(trained)
    cfg = ckpt["info"].model_cfg
    assert (cfg.arch, cfg.d_model, cfg.n_heads, cfg.ff_dim, cfg.n_layers) == (
        "transformer", 16, 2, 32, 1)
    assert ckpt["train_cfg"].lr_schedule == "inverse_sqrt"
    assert ckpt["train_cfg"].label_smoothing == 0.1
    assert "arch: transformer" in trained.with_name("m.config.yaml").read_text(encoding="utf-8")
    assert any(k.startswith("decoder.layers.layers.0.multihead_attn") for k in ckpt["model_state"])


def test_translate_and_evaluate_read_it(trained, capsys):
    assert main(["translate", "--checkpoint", str(trained), "我喜欢学习。", "他是老师。"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["translate", "--checkpoint", str(trained), "--beam", "3", "你好吗？"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    assert main(["evaluate", "--checkpoint", str(trained), "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "BLEU" in out


def test_resume_continues_the_schedule_and_the_history(trained, capsys):
    last = trained.with_name("m.last.pt")
    out = trained.with_name("r.pt")
    assert main(["train", "--resume", str(last), "--epochs", "3", "--quiet",
                 "--out", str(out)]) == 0
    saved = load_checkpoint(out.with_name("r.last.pt"))
    assert saved["info"].model_cfg.arch == "transformer"
    assert [int(h["epoch"]) for h in saved["history"]] == [1, 2, 3]
    steps = saved["trainer_state"]["step"]
    assert saved["trainer_state"]["scheduler"]["last_epoch"] == steps  # one per optimizer step


def test_training_from_a_cache(tmp_path, capsys):
    cache, ckpt = tmp_path / "cache", tmp_path / "c.pt"
    assert main(["preprocess", "--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en"),
                 "--out", str(cache), "--min-freq", "1", "--valid-frac", "0.2",
                 "--test-frac", "0.2", "--workers", "1", "--quiet"]) == 0
    assert main(["train", "--data-dir", str(cache), *TINY, "--epochs", "1", "--max-tokens", "60",
                 "--out", str(ckpt)]) == 0
    assert f"cache: {cache}" in capsys.readouterr().out
    saved = load_checkpoint(ckpt)
    assert saved["info"].model_cfg.arch == "transformer" and saved["info"].data_cfg.cache_hash


def test_the_transformer_preset_and_flags_over_it():
    def configs(*argv):
        p = plan(build_parser().parse_args(["train", *argv]))
        return p.data_cfg, p.model_cfg, p.train_cfg

    data_cfg, model_cfg, train_cfg = transformer_configs()
    d, m, t = configs("--preset", "transformer")
    assert (m.arch, m.d_model, m.n_heads, m.ff_dim, m.n_layers, m.dropout) == (
        "transformer", model_cfg.d_model, model_cfg.n_heads, model_cfg.ff_dim,
        model_cfg.n_layers, model_cfg.dropout)
    assert (t.lr_schedule, t.warmup_steps, t.label_smoothing, t.lr) == (
        "inverse_sqrt", train_cfg.warmup_steps, train_cfg.label_smoothing, train_cfg.lr)
    assert d.zh_tokens == data_cfg.zh_tokens and t.valid_bleu_sample == 500
    d, m, t = configs("--preset", "transformer", "--n-layers", "2", "--warmup-steps", "10")
    assert (m.n_layers, t.warmup_steps, m.arch) == (2, 10, "transformer")


def test_a_size_the_heads_do_not_divide_is_refused_with_its_flags(capsys):
    assert main(["train", *TEXT, "--arch", "transformer", "--d-model", "30", "--n-heads", "4",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --d-model must be a multiple of --n-heads (4), got 30"]


def test_the_command_line_under_torchrun(tmp_path):
    out = tmp_path / "m.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "seq2seq_lib", "train", *TEXT, *TINY, "--epochs", "2", "--batch-size", "4",
         "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test BLEU") == 1 and "2 processes (torchrun)" in proc.stdout
    saved = load_checkpoint(tmp_path / "m.last.pt")
    assert saved["trainer_state"]["world_size"] == 2
    assert saved["info"].model_cfg.arch == "transformer"
