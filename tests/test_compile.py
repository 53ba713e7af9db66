"""``--compile``: off by default, a flag of ``train``, and a one-line fallback to the uncompiled
model when there is no C++ compiler or compiling fails."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from conftest import tiny_setup

from seq2seq_lib import ModelConfig, fit
from seq2seq_lib.cli import build_parser
from seq2seq_lib.cli.train import plan
from seq2seq_lib.config import TrainConfig
from seq2seq_lib.trainer import compiling
from seq2seq_lib.trainer.compiling import CompileFallback, cxx_compiler, maybe_compile

TINY = ModelConfig(emb_dim=8, hid_dim=8, n_layers=1, dropout=0.0)


def test_the_flag_parses_and_is_off_by_default(capsys):
    assert TrainConfig().compile is False
    argv = ["train", "--data", "hsk", "--limit", "10"]
    assert plan(build_parser().parse_args(argv)).train_cfg.compile is False
    assert plan(build_parser().parse_args([*argv, "--compile"])).train_cfg.compile is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "--compile" in capsys.readouterr().out


def test_off_means_the_model_itself():
    model = torch.nn.Linear(2, 2)
    assert maybe_compile(model, False) is model


def fallback_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "--compile" in str(w.message)]


def fit_compiled(tiny_data) -> list[str]:
    """Train a tiny model two epochs with ``compile=True``; return the fallback lines."""
    data_cfg, data = tiny_data
    model, train, valid, cfg, _ = tiny_setup(data_cfg, data, epochs=2, model_cfg=TINY)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = fit(model, train, valid, dataclasses.replace(cfg, compile=True), progress=False)
    assert len(result.history) == 2 and result.history[-1]["train_loss"] > 0
    return fallback_warnings(record)


def test_without_a_compiler_training_runs_uncompiled_after_one_line(tiny_data, monkeypatch):
    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)
    monkeypatch.setattr(compiling.torch, "compile",
                        lambda *a, **k: pytest.fail("torch.compile must not be called"))
    assert cxx_compiler() is None
    lines = fit_compiled(tiny_data)
    assert len(lines) == 1 and "no C++ compiler" in lines[0] and "uncompiled" in lines[0]


def test_a_compile_error_at_the_first_call_falls_back_once(tiny_data, monkeypatch):
    """The compiled model raises, at its first call, what inductor raises when it finds no
    working C++ compiler (InductorError wrapping InvalidCxxCompiler)."""
    from torch._inductor.exc import InductorError, InvalidCxxCompiler

    def compiled(*args, **kwargs):
        raise InductorError(InvalidCxxCompiler(), None)

    monkeypatch.setattr(compiling, "cxx_compiler", lambda: "/usr/bin/c++")
    monkeypatch.setattr(compiling.torch, "compile", lambda model: compiled)
    lines = fit_compiled(tiny_data)
    assert len(lines) == 1 and "compiling failed (InductorError" in lines[0], lines
    assert "InvalidCxxCompiler" in lines[0] and "uncompiled" in lines[0]


def test_an_error_of_the_model_itself_is_not_hidden():
    def broken(*args, **kwargs):
        raise ValueError("shapes do not fit")

    wrapped = CompileFallback(torch.nn.Linear(2, 2), broken)
    with pytest.raises(ValueError, match="shapes"):
        wrapped(torch.zeros(1, 2))
    assert [n for n, _ in wrapped.named_parameters()] == ["module.weight", "module.bias"]


@pytest.mark.skipif(cxx_compiler() is None, reason="no C++ compiler for inductor")
def test_a_tiny_model_compiles_and_trains_like_the_uncompiled_one(tiny_data):
    data_cfg, data = tiny_data
    losses = {}
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    for on in (False, True):
        model, train, valid, cfg, _ = tiny_setup(data_cfg, data, epochs=1, model_cfg=TINY)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            result = fit(model, train, valid, dataclasses.replace(cfg, compile=on),
                         progress=False)
        assert fallback_warnings(record) == []
        losses[on] = (result.history[0]["train_loss"], result.history[0]["valid_loss"])
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it really compiled
    torch.testing.assert_close(losses[True], losses[False], rtol=1e-4, atol=1e-4)
