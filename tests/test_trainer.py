"""The Trainer: state saved and resumed mid-epoch, validation every N steps with last and best
checkpoints, the plateau schedule, early stopping, BLEU as the metric, the time budget, callbacks."""

from __future__ import annotations

import io
import sys
from dataclasses import replace
from functools import partial

import pytest
import torch
from conftest import TINY_MODEL, tiny_setup
from torch.utils.data import DataLoader

import seq2seq_lib.trainer.loop as trainer_mod
from seq2seq_lib import (
    ModelConfig,
    TrainConfig,
    TranslationDataset,
    Translator,
    collate,
    greedy_decode,
    load_checkpoint,
    make_loader,
    plot_history,
)
from seq2seq_lib.batching import TokenBucketSampler, length_arrays
from seq2seq_lib.checkpoint import last_checkpoint_path
from seq2seq_lib.recipe import GreedyBleu, train_model
from seq2seq_lib.runner import BackgroundRun
from seq2seq_lib.tokenize import detokenize_en
from seq2seq_lib.trainer import Trainer
from seq2seq_lib.vocab import Vocab

DROPOUT_MODEL = ModelConfig(emb_dim=32, hid_dim=64, n_layers=1, dropout=0.3)


def make_trainer(data_cfg, data, epochs=2, model_cfg=TINY_MODEL, path=None, train_loader=None,
                 **cfg_changes):
    """A trainer on the tiny corpus: 3 batches of 8 per epoch (unless ``train_loader`` says
    otherwise); ``path``: best checkpoint, with the last state beside it."""
    model, loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, epochs, model_cfg,
                                                        checkpoint_path=path)
    if path is not None:
        cfg.last_checkpoint_path = str(last_checkpoint_path(path))
    for name, value in cfg_changes.items():
        setattr(cfg, name, value)
    cfg.__post_init__()
    return Trainer(model, train_loader or loader, valid_loader, cfg, info, progress=False)


def token_loader(dataset, **budget):
    """The sampler a cache or ``--max-tokens`` trains with, in pools of one batch."""
    sampler = TokenBucketSampler(*length_arrays(dataset), pool_factor=1, **budget)
    return DataLoader(dataset, batch_sampler=sampler,
                      collate_fn=partial(collate, pad_id=dataset.pad_id))


LOADERS = {
    "buckets": lambda dataset: make_loader(dataset, 8, seed=0),
    # 8 batches of at most 36 tokens in epoch 0's order, 6 in epoch 1's, 7 in epoch 2's
    "token budget": partial(token_loader, max_tokens=36),
    "sentence buckets of a cache": partial(token_loader, batch_size=8),
}


@pytest.mark.parametrize("kind", LOADERS)
def test_a_run_stopped_mid_epoch_resumes_at_its_next_step(tiny_data, tmp_path, kind):
    """Stopped after step 2 of epoch 1 and resumed from its last state, a run (with dropout,
    so the random numbers matter) ends with exactly the weights of a run that never stopped;
    with every sampler (a token budget changes the number of batches from epoch to epoch)."""
    data_cfg, data = tiny_data

    def trainer(name):
        return make_trainer(data_cfg, data, model_cfg=DROPOUT_MODEL, path=tmp_path / name,
                            train_loader=LOADERS[kind](data.train))

    straight = trainer("a.pt")
    straight.fit()
    stopped = trainer("b.pt")
    stopped.add_callback("on_step", lambda t: t.state.step == 2)
    assert stopped.fit().stopped == "callback"
    saved = load_checkpoint(tmp_path / "b.last.pt")["trainer_state"]
    assert (saved["epoch"], saved["batch"], saved["step"]) == (1, 2, 2)
    resumed = trainer("b.pt")
    resumed.resume(tmp_path / "b.last.pt")
    assert (resumed.state.epoch, resumed.state.batch) == (1, 2)
    resumed.fit()
    assert [r["step"] for r in resumed.state.history] == [
        2, *(r["step"] for r in straight.state.history)]
    a, b = (load_checkpoint(tmp_path / f"{n}.last.pt") for n in "ab")
    assert a["trainer_state"]["step"] == b["trainer_state"]["step"] == straight.state.step
    for name, weight in a["model_state"].items():
        assert torch.equal(weight, b["model_state"][name]), name
    assert a["optimizer_state"]["state"][0]["step"] == b["optimizer_state"]["state"][0]["step"]


class CountingDataset(TranslationDataset):
    """A dataset's pairs, counting the examples read from it."""

    def __init__(self, dataset: TranslationDataset):
        self.__dict__.update(vars(dataset))
        self.reads = 0

    def __getitem__(self, idx):
        self.reads += 1
        return super().__getitem__(idx)


@pytest.mark.parametrize("kind", LOADERS)
def test_a_resumed_run_reads_no_batch_it_already_trained_on(tiny_data, tmp_path, kind):
    data_cfg, data = tiny_data
    stopped = make_trainer(data_cfg, data, epochs=1, path=tmp_path / "m.pt",
                           train_loader=LOADERS[kind](data.train))
    stopped.add_callback("on_step", lambda t: t.state.step == 2)
    stopped.fit()
    counting = CountingDataset(data.train)
    loader = LOADERS[kind](counting)
    loader.batch_sampler.set_epoch(1)
    rest = list(loader.batch_sampler)[2:]  # what the resumed epoch still has to train on
    resumed = make_trainer(data_cfg, data, epochs=1, path=tmp_path / "m.pt", train_loader=loader)
    resumed.resume(tmp_path / "m.last.pt")
    resumed.fit()
    assert resumed.state.step == 2 + len(rest)
    assert counting.reads == sum(len(batch) for batch in rest)


def test_a_resume_that_finds_no_new_best_leaves_the_best_checkpoint_whole(
        tiny_data, tmp_path, scripted_losses):
    """Resumed from its last state (the best being an earlier step) and finding no new best, a
    run once rewrote the best file with weights and history only: resumed from that file, the
    next run started at step 0 with a fresh Adam. The best file is written when found, never
    again."""
    data_cfg, data = tiny_data
    scripted_losses(1.0, 2.0, 3.0)
    path = tmp_path / "m.pt"
    make_trainer(data_cfg, data, epochs=2, path=path).fit()  # the best: step 3
    written = path.read_bytes()
    resumed = make_trainer(data_cfg, data, epochs=3, path=path)
    resumed.resume(last_checkpoint_path(path))
    result = resumed.fit()
    assert (result.best_step, result.steps, result.checkpoint) == (3, 9, path)
    assert path.read_bytes() == written
    best = load_checkpoint(path)
    for name, weight in resumed.model.state_dict().items():  # the model ends with the best
        assert torch.equal(weight, best["model_state"][name]), name
    again = make_trainer(data_cfg, data, epochs=3, path=tmp_path / "n.pt")
    again.resume(path)
    assert (again.state.epoch, again.state.batch, again.state.step) == (2, 0, 3)
    assert float(again.optimizer.state_dict()["state"][0]["step"]) == 3
    assert len(load_checkpoint(last_checkpoint_path(path))["history"]) == 3


def test_a_resume_that_writes_elsewhere_starts_with_the_best_file_it_continues(
        tiny_data, tmp_path, scripted_losses):
    """Resumed into another checkpoint path and finding no new best, a run once left no best
    file there: it starts with a whole copy of the best it continues, from the resumed file
    itself or from the best file beside a last state."""
    data_cfg, data = tiny_data
    scripted_losses(1.0, 2.0, 3.0, 3.0, 3.0)
    path = tmp_path / "m.pt"
    make_trainer(data_cfg, data, epochs=2, path=path).fit()  # the best: step 3
    for source, target in ((last_checkpoint_path(path), tmp_path / "a.pt"), (path, tmp_path / "b.pt")):
        resumed = make_trainer(data_cfg, data, epochs=3, path=target)
        resumed.resume(source)
        result = resumed.fit()
        assert (result.best_step, result.checkpoint) == (3, target)
        assert target.read_bytes() == path.read_bytes()


def test_an_empty_validation_set_is_refused(tiny_data):
    """An empty validation set once gave a valid loss of 0.0 (the first epoch stayed the best)
    and then an IndexError in the validation BLEU."""
    data_cfg, data = tiny_data
    empty = TranslationDataset([], [], data.src_vocab, data.trg_vocab)
    model, train_loader, _, cfg, info = tiny_setup(data_cfg, data, 1)
    trainer = Trainer(model, train_loader, make_loader(empty, 32, bucket=False, shuffle=False),
                      cfg, info, progress=False)
    with pytest.raises(ValueError, match="the validation set is empty"):
        trainer.fit()
    assert trainer.state.step == 0
    no_valid = replace(data, valid=empty)
    with pytest.raises(ValueError, match="the validation set is empty"):
        train_model(no_valid, data_cfg, TINY_MODEL,
                    TrainConfig(epochs=1, batch_size=8, device="cpu", valid_bleu_sample=10),
                    progress=False)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_are_drawn_on_a_terminal_only(tiny_data, capsys, monkeypatch):
    """``make demo > log`` once filled the log with the bar's carriage returns."""
    data_cfg, data = tiny_data
    trainer = make_trainer(data_cfg, data, epochs=2, valid_every=2)
    trainer.progress = True
    trainer.fit()
    printed = capsys.readouterr()
    assert "\r" not in printed.out + printed.err
    assert printed.out.count("\n") == 1 and printed.err == ""  # the device line only
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    trainer = make_trainer(data_cfg, data, epochs=1)
    trainer.progress = True
    trainer.fit()
    assert "\r" in terminal.getvalue() and "epoch 1" in terminal.getvalue()


def test_validation_every_n_steps_writes_the_last_and_the_best_state(tiny_data, tmp_path):
    data_cfg, data = tiny_data
    path = tmp_path / "m.pt"
    trainer = make_trainer(data_cfg, data, path=path, valid_every=2)
    result = trainer.fit()
    assert [r["step"] for r in result.history] == [2, 3, 4, 6]  # every 2 steps and at epoch ends
    assert [round(r["progress"], 3) for r in result.history] == [0.667, 1.0, 1.333, 2.0]
    drawn = plot_history(result.history).axes[0].lines[0].get_xdata()  # where they were taken
    assert [round(x, 3) for x in drawn] == [0.667, 1.0, 1.333, 2.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.last.pt", "m.pt"]
    last, best = load_checkpoint(result.last_checkpoint), load_checkpoint(result.checkpoint)
    assert last["trainer_state"]["step"] == result.steps == 6
    assert best["trainer_state"]["step"] == result.best_step
    assert len(last["history"]) == 4  # the whole history in the last state
    assert best["history"] == [r for r in last["history"] if r["step"] <= result.best_step]
    assert best["epoch"] == result.best_epoch
    for name, weight in trainer.model.state_dict().items():  # the model ends with the best
        assert torch.equal(weight.cpu(), best["model_state"][name]), name
    if result.best_step != 6:
        assert "best_model_state" in last


@pytest.fixture
def scripted_losses(monkeypatch):
    """Validation losses that follow a script (the training itself is real)."""
    def install(*losses):
        it = iter(losses)
        monkeypatch.setattr(trainer_mod, "evaluate_loss", lambda *a, **k: next(it))
    return install


def test_the_plateau_schedule_cuts_the_lr_and_patience_stops(tiny_data, tmp_path,
                                                              scripted_losses):
    data_cfg, data = tiny_data
    scripted_losses(3.0, 2.0, 2.5, 2.6, 2.7, 2.8)
    trainer = make_trainer(data_cfg, data, epochs=6, path=tmp_path / "m.pt",
                           lr_schedule="plateau", lr_factor=0.5, lr_patience=0, patience=2)
    result = trainer.fit()
    assert result.stopped == "early-stopping"
    assert [r["valid_loss"] for r in result.history] == [3.0, 2.0, 2.5, 2.6]
    assert [r["lr"] for r in result.history] == [1e-2, 1e-2, 1e-2, 5e-3]  # cut after 2.5
    assert trainer.optimizer.param_groups[0]["lr"] == 2.5e-3  # and again after 2.6
    assert (result.best_epoch, result.best_valid_loss) == (2, 2.0)
    best = load_checkpoint(result.checkpoint)
    assert best["epoch"] == 2 and len(best["history"]) == 2  # as it was when found
    assert len(load_checkpoint(result.last_checkpoint)["history"]) == 4
    assert best["trainer_state"]["scheduler"]["num_bad_epochs"] == 0


def test_bleu_can_decide_which_state_is_best(tiny_data, tmp_path, scripted_losses):
    data_cfg, data = tiny_data
    scripted_losses(3.0, 2.0, 1.0)
    scores = iter([1.0, 5.0, 3.0])
    model, train_loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, 3,
                                                              checkpoint_path=tmp_path / "m.pt")
    cfg.best_metric, cfg.valid_bleu_sample = "bleu", 20
    trainer = Trainer(model, train_loader, valid_loader, cfg, info, progress=False,
                      valid_bleu=lambda *a: next(scores))
    result = trainer.fit()
    assert [r["valid_bleu"] for r in result.history] == [1.0, 5.0, 3.0]
    assert (result.best_epoch, result.best_score, result.best_valid_loss) == (2, 5.0, 2.0)
    assert load_checkpoint(result.checkpoint)["epoch"] == 2


def test_greedy_bleu_decodes_as_the_translator_and_as_before(memorized, tiny_data):
    """GreedyBleu decodes through the Translator's code: the same translations, and those of
    its former loop of its own (length-sorted batches of 128, greedy)."""
    model, _, info = memorized
    data_cfg, data = tiny_data
    bleu = GreedyBleu.from_data(data, sample=500)
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, TINY_MODEL)
    got = bleu.translate(model, bleu.sources)
    assert got == translator.translate_batch([zh for zh, _ in data.splits.valid])
    order = sorted(range(len(bleu.sources)), key=lambda i: len(bleu.sources[i]))
    batch = collate([(bleu.sources[i], torch.tensor([Vocab.sos_id])) for i in order])
    before = [""] * len(order)
    for i, hyp in zip(order, greedy_decode(model, batch.src, batch.src_lens, 50)):
        before[i] = detokenize_en(data.trg_vocab.decode(hyp.ids), capitalize=True)
    assert got == before


def test_greedy_bleu_matches_the_translators(memorized, tiny_data):
    model, _, info = memorized
    data_cfg, data = tiny_data
    bleu = GreedyBleu.from_data(data, sample=500)  # more than there are: all 20 pairs
    assert len(bleu.sources) == len(data.valid) == 20
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, TINY_MODEL)
    expected, _ = translator.bleu(data.splits.valid)
    assert bleu(model) == pytest.approx(expected.score) and expected.score > 90
    assert len(GreedyBleu.from_data(data, sample=5).sources) == 5


def test_the_time_budget_stops_after_the_step_that_crosses_it(tiny_data, tmp_path):
    data_cfg, data = tiny_data
    result = make_trainer(data_cfg, data, epochs=50, path=tmp_path / "m.pt",
                          max_minutes=1e-9).fit()
    assert result.stopped == "time-budget"
    assert result.steps == 1 and [r["step"] for r in result.history] == [1]  # validated
    assert result.checkpoint.is_file() and result.last_checkpoint.is_file()


def test_callbacks_per_step_validation_and_epoch(tiny_data):
    data_cfg, data = tiny_data
    trainer = make_trainer(data_cfg, data, epochs=3, valid_every=2)
    seen = {"on_step": [], "on_validation": [], "on_epoch": []}
    for event, steps in seen.items():
        trainer.add_callback(event, lambda t, steps=steps: steps.append(t.state.step))
    trainer.add_callback("on_step", lambda t: t.state.step == 5)  # True: stop
    result = trainer.fit()
    assert result.stopped == "callback"
    assert seen["on_step"] == [1, 2, 3, 4, 5]
    assert seen["on_validation"] == [2, 3, 4, 5] == [r["step"] for r in result.history]
    assert seen["on_epoch"] == [3]
    with pytest.raises(ValueError, match="unknown event"):
        trainer.add_callback("on_batch_end", print)


def test_a_metric_that_needs_bleu_is_refused_without_it(tiny_data):
    from seq2seq_lib import TrainConfig
    from seq2seq_lib.config import ConfigError

    with pytest.raises(ConfigError, match="best_metric bleu needs a validation BLEU"):
        TrainConfig(best_metric="bleu")
    data_cfg, data = tiny_data
    model, train_loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, 1)
    cfg.valid_bleu_sample = 10
    with pytest.raises(ValueError, match="needs valid_bleu="):
        Trainer(model, train_loader, valid_loader, cfg, info)


def test_a_background_run_keeps_the_result_or_the_error():
    run = BackgroundRun()
    with pytest.raises(RuntimeError, match="nothing to wait for"):
        run.wait()
    done = []
    run.start(lambda stop: "result", on_done=done.append)
    assert run.wait(timeout=10) == "result" and done == [run]
    run.start(lambda stop: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run.wait(timeout=10)

    def until_stopped(stop):
        assert stop.wait(timeout=10)
        return "stopped"

    run.start(until_stopped)
    with pytest.raises(RuntimeError, match="already running"):
        run.start(until_stopped)
    run.stop()
    assert run.wait(timeout=10) == "stopped" and not run.running


def test_best_metric_auto_means_bleu_when_a_validation_bleu_is_computed():
    """bench/best_metric.py measured best-by-BLEU above best-by-loss on the demo recipe, so
    "auto" (the default) takes BLEU whenever there is one, and loss otherwise."""
    from seq2seq_lib.config import ConfigError

    assert TrainConfig().best_metric == "auto" and TrainConfig().best_by == "loss"
    assert TrainConfig(valid_bleu_sample=20).best_by == "bleu"
    assert TrainConfig(valid_bleu_sample=20, best_metric="loss").best_by == "loss"
    with pytest.raises(ConfigError, match="best_metric must be auto, loss or bleu"):
        TrainConfig(best_metric="chrf")
