"""Shared fixtures: the tiny corpus, its prepared form, and a small model trained to memorize it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Per-user caches start empty, as on a new machine: a stale matplotlib font cache once hid a
# failure. Set before anything imports matplotlib; child processes (the CLI, notebook kernels,
# JupyterLab) inherit them.
_FRESH = Path(tempfile.mkdtemp(prefix="seq2seq-test-caches-"))
FRESH_CACHES = {name: str(_FRESH / folder) for name, folder in
                (("MPLCONFIGDIR", "matplotlib"), ("XDG_CACHE_HOME", "cache"),
                 ("IPYTHONDIR", "ipython"))}
for _name, _folder in FRESH_CACHES.items():
    os.makedirs(_folder, exist_ok=True)
    os.environ[_name] = _folder

import pytest
import torch

from seq2seq_lib import (
    DataConfig,
    ModelConfig,
    TrainConfig,
    Translator,
    build_model,
    fit,
    make_loader,
    prepare_data,
    read_parallel,
    set_seed,
)
from seq2seq_lib.checkpoint import CheckpointInfo

DATA = Path(__file__).parent / "data"

TINY_MODEL = ModelConfig(emb_dim=32, hid_dim=64, n_layers=1, dropout=0.0)
ATTN_MODEL = ModelConfig(emb_dim=32, hid_dim=64, n_layers=1, dropout=0.0, attention="bahdanau")


@pytest.fixture(scope="session")
def tiny_corpus():
    return read_parallel(DATA / "tiny.zh", DATA / "tiny.en")


@pytest.fixture(scope="session")
def tiny_data(tiny_corpus):
    """All 20 pairs in every split (valid = test = train), min_freq 1: a memorization task."""
    cfg = DataConfig(source="parallel", src_path=str(DATA / "tiny.zh"),
                     trg_path=str(DATA / "tiny.en"), valid_frac=0.0, test_frac=0.0, min_freq=1)
    data = prepare_data(cfg, tiny_corpus)
    data.valid = data.test = data.train
    data.tokens["valid"] = data.tokens["test"] = data.tokens["train"]
    data.splits.valid = data.splits.test = data.splits.train
    return cfg, data


def tiny_setup(data_cfg, data, epochs=60, model_cfg=TINY_MODEL, checkpoint_path=None, seed=0,
               lr=1e-2):
    """A fresh small model with its loaders and configs: (model, train, valid, cfg, info)."""
    set_seed(seed)
    model = build_model(model_cfg, len(data.src_vocab), len(data.trg_vocab))
    cfg = TrainConfig(epochs=epochs, batch_size=8, lr=lr, seed=seed, device="cpu",
                      checkpoint_path=str(checkpoint_path) if checkpoint_path else None)
    info = CheckpointInfo(data.src_vocab, data.trg_vocab, data_cfg, model_cfg)
    train_loader = make_loader(data.train, 8, seed=seed)
    valid_loader = make_loader(data.valid, 32, bucket=False, shuffle=False)
    return model, train_loader, valid_loader, cfg, info


def train_tiny(data_cfg, data, epochs=60, model_cfg=TINY_MODEL, checkpoint_path=None,
               seed=0, lr=1e-2, **kw):
    """Train a small model on the tiny corpus; returns (model, result, info, train_cfg)."""
    model, train_loader, valid_loader, cfg, info = tiny_setup(
        data_cfg, data, epochs, model_cfg, checkpoint_path, seed, lr)
    result = fit(model, train_loader, valid_loader, cfg, info, progress=False, **kw)
    return model, result, info, cfg


@pytest.fixture(scope="session")
def memorized(tiny_data):
    """A model that has learned the 20 tiny pairs by heart."""
    data_cfg, data = tiny_data
    model, result, info, cfg = train_tiny(data_cfg, data, epochs=80)
    return model, result, info


@pytest.fixture(scope="session")
def attention_translator(tiny_data):
    """A translator with Bahdanau attention that has learned the 20 tiny pairs by heart, and
    its :class:`FitResult`."""
    data_cfg, data = tiny_data
    model, result, info, _ = train_tiny(data_cfg, data, epochs=40, model_cfg=ATTN_MODEL)
    return Translator(model, data.src_vocab, data.trg_vocab, data_cfg, info.model_cfg), result


def rejects(check, answer, case_name: str, capsys) -> str:
    """``check(answer)`` is False and its Chinese message names ``case_name`` with no traceback;
    returns the message (the checkers' tests against typical wrong answers use it)."""
    assert check(answer) is False
    out = capsys.readouterr().out
    assert f"「{case_name}」没有通过" in out, out
    assert "Traceback" not in out
    return out


def ranks_end_alike(folder: Path) -> bool:
    """Whether the two torchrun processes of ``tests/ddp_worker.py`` ended with equal weights
    (``rank0.pt`` and ``rank1.pt`` in ``folder``)."""
    rank0 = torch.load(folder / "rank0.pt", weights_only=True)
    rank1 = torch.load(folder / "rank1.pt", weights_only=True)
    return all(torch.equal(rank0[k], rank1[k]) for k in rank0)
