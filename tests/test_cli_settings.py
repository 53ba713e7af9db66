"""``train``'s settings: flags made from the config dataclasses, config files, presets, and the
order in which they win (dataclass default < preset < config file < flags). Nothing is trained."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import pytest

from seq2seq_lib.checkpoint import best_checkpoint_path
from seq2seq_lib.cli import build_parser, main
from seq2seq_lib.cli.flags import SECTIONS, settings
from seq2seq_lib.cli.settings import to_yaml
from seq2seq_lib.cli.train import plan
from seq2seq_lib.config import DataConfig, ModelConfig, TrainConfig

DATA = Path(__file__).parent / "data"


def configs(*argv: str):
    p = plan(build_parser().parse_args(["train", *argv]))
    return p.data_cfg, p.model_cfg, p.train_cfg


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_setting_has_help_and_a_flag_or_a_reason_not_to():
    for section, cls in SECTIONS.items():
        declared = {f.name for f in fields(cls)}
        assert {s.name for s in settings(section)} == declared
        for s in settings(section):
            assert s.help, f"{section}.{s.name} has no help text"
    flags = [s.flag for sec in SECTIONS for s in settings(sec) if s.flag]
    assert len(flags) == len(set(flags))  # one flag, one setting
    hidden = {(s.section, s.name) for sec in SECTIONS for s in settings(sec) if s.flag is None}
    assert hidden == {("data", "cache_hash"), ("train", "seed"), ("train", "last_checkpoint_path")}


def test_defaults_are_the_dataclasses_except_where_the_command_line_says():
    data_cfg, model_cfg, train_cfg = configs()
    assert data_cfg == DataConfig() and model_cfg == ModelConfig()
    assert asdict(train_cfg) == {**asdict(TrainConfig()), "valid_bleu_sample": 500,
                                 "checkpoint_path": "checkpoints/model.pt",
                                 "last_checkpoint_path": "checkpoints/model.last.pt"}


def test_one_seed_flag_seeds_the_split_and_the_training():
    data_cfg, _, train_cfg = configs("--seed", "7", "--no-bucket", "--amp")
    assert data_cfg.seed == train_cfg.seed == 7
    assert train_cfg.bucket is False and train_cfg.precision == "amp"


def test_a_config_file_sits_between_the_preset_and_the_flags(tmp_path):
    run = write(tmp_path / "run.yaml", f"""
data: {{src_path: {DATA / 'tiny.zh'}, trg_path: {DATA / 'tiny.en'}, min_freq: 3}}
model: {{hid_dim: 32, attention: dot}}
train: {{epochs: 4, lr: 0.01, checkpoint_path: {tmp_path / 'run.pt'}}}
""")
    data_cfg, model_cfg, train_cfg = configs("--preset", "demo", "--config", str(run), "--epochs", "5")
    assert data_cfg.source == "parallel" and data_cfg.min_freq == 3  # the file over the preset
    assert data_cfg.zh_tokens == "char" and model_cfg.bidirectional  # the preset where it says nothing
    assert (model_cfg.hid_dim, model_cfg.attention) == (32, "dot")
    assert (train_cfg.epochs, train_cfg.lr) == (5, 0.01)  # the flag over the file
    assert train_cfg.last_checkpoint_path == str(tmp_path / "run.last.pt")
    data_cfg, *_ = configs("--config", str(run), "--tsv", str(DATA / "tiny.tsv"))
    assert (data_cfg.source, data_cfg.tsv_path, data_cfg.src_path) == ("tsv", str(DATA / "tiny.tsv"), None)


def test_the_saved_settings_repeat_the_run(tmp_path):
    original = configs("--preset", "demo", "--limit", "300", "--hid-dim", "24", "--out",
                       str(tmp_path / "m.pt"))
    saved = write(tmp_path / "m.config.yaml", to_yaml(original))
    assert configs("--config", str(saved)) == original


@pytest.mark.parametrize("text, message", [
    ("model: {hidden: 3}\n", "run.yaml: unknown key model.hidden"),
    ("training: {epochs: 3}\n", "run.yaml: unknown section 'training' (use data, model, train)"),
    ("train: {epochs: ten}\n", "run.yaml: train.epochs must be an integer, got 'ten'"),
    ("train: {epochs: 0}\n", "run.yaml: train.epochs must be at least 1, got 0"),
    ("model: {attention: luong}\n",
     "run.yaml: model.attention must be one of none, bahdanau, dot, general, got 'luong'"),
    ("train: {last_checkpoint_path: x.pt}\n", "run.yaml: unknown key train.last_checkpoint_path"),
    ("- epochs\n", "run.yaml: expected the sections data, model, train, got a list"),
    ("train: {epochs: [1\n", "run.yaml:2: not a readable YAML file"),
])
def test_a_bad_config_file_is_refused_with_one_line(tmp_path, capsys, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "run.yaml", text)
    assert main(["train", "--config", "run.yaml", "--src", "missing.zh", "--trg", "missing.en"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]


def test_a_flag_that_contradicts_another_corpus_flag_is_refused(capsys):
    assert main(["train", "--src", "a.zh", "--trg", "a.en", "--tsv", "b.tsv"]) == 2
    assert capsys.readouterr().err.strip() == "error: give one corpus: --src/--trg or --tsv, not both"


def test_a_resume_writes_beside_the_checkpoint_it_resumes():
    assert best_checkpoint_path("checkpoints/demo.last.pt") == Path("checkpoints/demo.pt")
    assert best_checkpoint_path("runs/a.pt") == Path("runs/a.pt")
