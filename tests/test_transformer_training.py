"""What the Transformer trains with: the warm-up + inverse-sqrt schedule (values, resume) and
label smoothing (against torch's own, padding ignored)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY_MODEL, tiny_setup

from seq2seq_lib import TrainConfig, batch_loss, collate, load_checkpoint, make_loader
from seq2seq_lib.checkpoint import last_checkpoint_path
from seq2seq_lib.config import AUTO_WARMUP_MAX, ConfigError, transformer_configs
from seq2seq_lib.lesson import lesson_shifted_loss
from seq2seq_lib.trainer import Trainer
from seq2seq_lib.trainer.update import inverse_sqrt, with_warmup

PAD = 1


def make_trainer(data_cfg, data, path=None, epochs=2, **changes):
    model, loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, epochs, TINY_MODEL,
                                                        checkpoint_path=path)
    if path is not None:
        cfg.last_checkpoint_path = str(last_checkpoint_path(path))
    for name, value in changes.items():
        setattr(cfg, name, value)
    cfg.__post_init__()
    return Trainer(model, loader, valid_loader, cfg, info, progress=False)


def test_inverse_sqrt_rises_to_the_peak_then_falls():
    factors = [inverse_sqrt(s, 4) for s in range(16)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]  # steps 1..4 of the warm-up
    assert factors[4] == pytest.approx(math.sqrt(4 / 5)) and factors[15] == pytest.approx(0.5)
    # Vaswani et al.'s formula, scaled to peak at 1
    for s in range(1, 17):
        noam = min(s ** -0.5, s * 4 ** -1.5) / (4 ** -0.5)
        assert inverse_sqrt(s - 1, 4) == pytest.approx(noam)


def test_the_trainer_follows_the_schedule_step_by_step(tiny_data):
    data_cfg, data = tiny_data
    trainer = make_trainer(data_cfg, data, epochs=2, lr_schedule="inverse_sqrt", warmup_steps=4)
    seen = []
    trainer.add_callback("on_step", lambda t: seen.append(t.optimizer.param_groups[0]["lr"]))
    result = trainer.fit()
    lr = trainer.cfg.lr
    assert seen == pytest.approx([lr * inverse_sqrt(s, 4) for s in range(1, 7)])  # 3 per epoch
    # a record shows the rate the next step will use
    assert [r["lr"] for r in result.history] == pytest.approx([lr, lr * math.sqrt(4 / 7)])


def test_a_resumed_inverse_sqrt_run_ends_as_one_that_never_stopped(tiny_data, tmp_path):
    data_cfg, data = tiny_data
    changes = {"lr_schedule": "inverse_sqrt", "warmup_steps": 3, "epochs": 3}
    straight = make_trainer(data_cfg, data, tmp_path / "a.pt", **changes)
    straight.fit()
    stopped = make_trainer(data_cfg, data, tmp_path / "b.pt", **changes)
    stopped.add_callback("on_step", lambda t: t.state.step == 4)
    assert stopped.fit().stopped == "callback"
    resumed = make_trainer(data_cfg, data, tmp_path / "b.pt", **changes)
    resumed.resume(tmp_path / "b.last.pt")
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(
        resumed.cfg.lr * inverse_sqrt(4, 3))
    resumed.fit()
    a, b = (load_checkpoint(tmp_path / f"{n}.last.pt") for n in "ab")
    for name, weight in a["model_state"].items():
        assert torch.equal(weight, b["model_state"][name]), name
    assert a["trainer_state"]["scheduler"]["last_epoch"] == 9


def test_label_smoothing_is_torchs_with_padding_ignored(tiny_data):
    data_cfg, data = tiny_data
    model, *_ = tiny_setup(data_cfg, data, 1, TINY_MODEL)
    model.eval()
    batch = collate([data.train[i] for i in range(5)], PAD)  # lengths differ: padded targets
    target = batch.trg[1:]
    assert (target == PAD).any()
    logits = model(batch.src, batch.src_lens, batch.trg)  # [trg_len - 1, batch, vocab]
    flat, gold = logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
    for eps in (0.0, 0.1, 0.3):
        loss, n = batch_loss(model, batch, label_smoothing=eps)
        expected = torch.nn.functional.cross_entropy(flat, gold, ignore_index=PAD,
                                                     label_smoothing=eps)
        assert n == int((gold != PAD).sum())
        torch.testing.assert_close(loss, expected)
    # by hand: (1 - eps) * NLL + eps * mean over the vocabulary of -log p
    logp = flat.log_softmax(-1)[gold != PAD]
    nll = -logp.gather(1, gold[gold != PAD].unsqueeze(1)).squeeze(1)
    by_hand = (0.9 * nll - 0.1 * logp.mean(-1)).mean()
    torch.testing.assert_close(batch_loss(model, batch, label_smoothing=0.1)[0], by_hand)


def test_the_trainer_smooths_the_training_loss_only(tiny_data):
    data_cfg, data = tiny_data
    plain = make_trainer(data_cfg, data, epochs=1).fit().history[0]
    smooth = make_trainer(data_cfg, data, epochs=1, label_smoothing=0.2).fit().history[0]
    assert smooth["train_loss"] > plain["train_loss"]  # the same first step, a smoothed loss
    assert smooth["valid_loss"] != smooth["train_loss"]
    with pytest.raises(ValueError, match="takes no label_smoothing"):
        model, loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, 1, TINY_MODEL)
        cfg.label_smoothing = 0.1
        Trainer(model, loader, valid_loader, cfg, info, loss_fn=lesson_shifted_loss)


@pytest.mark.parametrize("accumulate, steps_per_epoch", [(1, 3), (2, 2)])
def test_warmup_steps_0_warms_up_over_one_epochs_optimizer_steps(tiny_data, accumulate,
                                                                  steps_per_epoch):
    data_cfg, data = tiny_data  # 3 batches of 8 an epoch; accumulate 2: steps of 2 batches
    model, _, valid_loader, cfg, info = tiny_setup(data_cfg, data, 2, TINY_MODEL)
    cfg.lr_schedule, cfg.warmup_steps, cfg.accumulate = "inverse_sqrt", 0, accumulate
    loader = make_loader(data.train, 8, seed=0, accumulate=accumulate)
    trainer = Trainer(model, loader, valid_loader, cfg, info, progress=False)
    assert trainer.cfg.warmup_steps == steps_per_epoch
    seen = []
    trainer.add_callback("on_step", lambda t: seen.append(t.optimizer.param_groups[0]["lr"]))
    trainer.fit()
    lr = trainer.cfg.lr
    assert seen == pytest.approx([lr * inverse_sqrt(s, steps_per_epoch)
                                  for s in range(1, 2 * steps_per_epoch + 1)])


def test_the_one_epoch_warmup_has_a_ceiling_and_leaves_other_settings_alone():
    never = lambda: pytest.fail("the epoch's steps were counted without need")  # noqa: E731
    cfg = TrainConfig(lr_schedule="inverse_sqrt", warmup_steps=0)
    assert with_warmup(cfg, lambda: 150_000).warmup_steps == AUTO_WARMUP_MAX == 4000
    assert with_warmup(cfg, lambda: 0).warmup_steps == 1
    assert with_warmup(TrainConfig(lr_schedule="inverse_sqrt", warmup_steps=7), never
                       ).warmup_steps == 7
    plateau = TrainConfig(lr_schedule="plateau", warmup_steps=0)
    assert with_warmup(plateau, never) is plateau
    assert cfg.warmup_steps == 0  # a copy: the settings asked for stay as they were
    assert transformer_configs()[2].warmup_steps == 0


def test_the_settings_are_checked():
    with pytest.raises(ConfigError, match=r"warmup_steps must be 0 \(one epoch\) or more"):
        TrainConfig(lr_schedule="inverse_sqrt", warmup_steps=-1)
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        TrainConfig(label_smoothing=1.0)
    with pytest.raises(ConfigError, match="must be none, plateau or inverse_sqrt"):
        TrainConfig(lr_schedule="cosine")
