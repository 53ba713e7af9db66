"""The cool-down (``--cooldown X``): in the last share X of a run, of its epochs or of its time
budget, the learning rate falls linearly to 0, on top of whatever schedule the run has.
(Two processes following the first one's clock: tests/test_distributed.py.)"""

from __future__ import annotations

import pytest
import torch
from test_trainer import make_trainer
from torch import nn

from seq2seq_lib.config import ConfigError, TrainConfig
from seq2seq_lib.device import resolve_precision
from seq2seq_lib.trainer.stopping import StopSignals
from seq2seq_lib.trainer.update import Updater, cooldown, inverse_sqrt


def test_the_factor_is_one_until_the_last_share_then_falls_linearly_to_zero():
    assert [cooldown(p, 0.5) for p in (0.0, 0.5, 0.75, 0.9, 1.0, 1.5)] == pytest.approx(
        [1.0, 1.0, 0.5, 0.2, 0.0, 0.0])
    assert cooldown(0.99, 0.0) == 1.0  # off
    assert cooldown(0.25, 1.0) == pytest.approx(0.75)  # the whole run
    with pytest.raises(ConfigError, match="cooldown"):
        TrainConfig(cooldown=1.5)


def one_step(lr_scale: float, schedule: str = "none") -> tuple[torch.Tensor, Updater]:
    """The change of a small linear model's weights in one Adam step with ``lr_scale``."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    cfg = TrainConfig(lr=1e-2, lr_schedule=schedule, warmup_steps=4, precision="fp32")
    updater = Updater(model, cfg, torch.device("cpu"), resolve_precision("fp32",
                                                                          torch.device("cpu")),
                      lambda m, batch, tf: (m(batch).pow(2).mean(), batch.shape[0]))
    before = model.weight.detach().clone()
    updater.lr_scale = lr_scale
    updater.step(model, torch.randn(5, 4))
    return model.weight.detach() - before, updater


def test_the_step_uses_the_scaled_rate_and_the_schedule_keeps_its_own():
    full, _ = one_step(1.0)
    half, updater = one_step(0.5)
    still, _ = one_step(0.0)
    assert torch.allclose(half, full / 2, atol=1e-7) and full.abs().min() > 0
    assert torch.count_nonzero(still) == 0
    assert updater.optimizer.param_groups[0]["lr"] == 1e-2  # the schedule's own rate
    assert updater.lr == pytest.approx(5e-3)  # what the next step uses
    _, warm = one_step(0.5, "inverse_sqrt")  # after one step of the warm-up: 2 / 4 of the peak
    assert warm.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * inverse_sqrt(1, 4))


def rates_by_step(trainer) -> list[float]:
    rates: list[float] = []
    trainer.add_callback("on_step", lambda t: rates.append(t.updater.lr))
    trainer.fit()
    return rates


def test_over_the_epochs_the_last_half_falls_to_zero(tiny_data):
    data_cfg, data = tiny_data  # 3 steps an epoch, 2 epochs: 6 steps
    trainer = make_trainer(data_cfg, data, epochs=2, cooldown=0.5)
    lr = trainer.cfg.lr
    rates = rates_by_step(trainer)
    done = [s / 6 for s in range(6)]  # the share done before each step
    assert rates == pytest.approx([lr * cooldown(p, 0.5) for p in done])
    assert rates[:4] == [lr] * 4 and 0 < rates[-1] < rates[-2] < rates[3]
    assert [r["lr"] for r in trainer.state.history] == pytest.approx([lr, rates[-1]])


def test_under_a_time_budget_the_clock_counts_when_it_is_further_along(tiny_data,
                                                                         monkeypatch):
    data_cfg, data = tiny_data
    trainer = make_trainer(data_cfg, data, epochs=50, max_minutes=1.0, cooldown=0.5)
    # a clock that moves 6 s a step: the 60 s budget is used up after 10 steps
    monkeypatch.setattr(StopSignals, "elapsed", lambda self: 6.0 * trainer.state.step)
    lr = trainer.cfg.lr
    rates = rates_by_step(trainer)
    assert trainer.state.step == 10  # the budget stopped it, not the 50 epochs
    assert rates == pytest.approx([lr * cooldown(s / 10, 0.5) for s in range(10)])
    assert rates[-1] == pytest.approx(lr * 0.2)


def test_without_a_cooldown_nothing_changes(tiny_data):
    data_cfg, data = tiny_data
    trainer = make_trainer(data_cfg, data, epochs=2)
    assert rates_by_step(trainer) == [trainer.cfg.lr] * 6
