"""Gradient accumulation: ``accumulate=K`` steps once per K batches with the loss averaged over
all their tokens, so it trains as batches K times larger, up to rounding (fp32, no dropout)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from conftest import TINY_MODEL
from torch.utils.data import DataLoader

from seq2seq_lib import TrainConfig, collate, make_loader
from seq2seq_lib.batching import TokenBucketSampler, length_arrays, sorted_loader
from seq2seq_lib.recipe import new_model
from seq2seq_lib.trainer import Trainer


class Joined:
    """The batches of an accumulating sampler, K consecutive ones joined into one."""

    def __init__(self, sampler: TokenBucketSampler):
        self.sampler = sampler

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.sampler.set_epoch(epoch, start)

    def __iter__(self):
        batches = list(self.sampler)
        k = self.sampler.accumulate
        for i in range(0, len(batches), k):
            yield [j for b in batches[i : i + k] for j in b]

    def __len__(self) -> int:
        return len(self.sampler) // self.sampler.accumulate


class KeepFinal(Trainer):
    """A trainer that also keeps the weights it ended with (before the best ones come back)."""

    def _end(self, save_last: bool) -> None:
        self.final = {k: v.clone() for k, v in self.model.state_dict().items()}
        super()._end(save_last)


def trained(data, loader, accumulate: int) -> tuple[dict[str, torch.Tensor], int]:
    cfg = TrainConfig(epochs=2, batch_size=3, lr=1e-2, device="cpu", precision="fp32",
                      accumulate=accumulate)
    model = new_model(data, TINY_MODEL, 0)
    trainer = KeepFinal(model, loader, sorted_loader(data.valid, 64), cfg, progress=False)
    trainer.fit()
    return trainer.final, trainer.state.step


@pytest.mark.parametrize("k", [2, 3])
def test_accumulating_k_batches_trains_as_k_times_larger_batches(tiny_data, k):
    _, data = tiny_data
    micro = make_loader(data.train, 3, seed=5, accumulate=k)
    big = DataLoader(data.train, batch_sampler=Joined(micro.batch_sampler),
                     collate_fn=partial(collate, pad_id=data.train.pad_id))
    (a, steps_a), (b, steps_b) = trained(data, micro, k), trained(data, big, 1)
    assert steps_a == steps_b == 2 * -(-7 // k)  # 20 pairs: 7 batches of 3 an epoch
    diff = max(float((a[n] - b[n]).abs().max()) for n in a)
    # rounding only: the micro-batches' gradients are summed in another order, and Adam's
    # division by sqrt(v) magnifies that for weights with tiny gradients (2.7e-05 seen on one
    # CPU); a loss weighted per batch instead of per token moved them by 4e-02 and more
    assert diff < 1e-4, f"largest weight difference {diff:.2e}"


def test_a_sampler_built_for_another_step_is_refused(tiny_data):
    _, data = tiny_data
    cfg = TrainConfig(epochs=1, batch_size=3, device="cpu", accumulate=2)
    with pytest.raises(ValueError, match="steps of 1 batches, but 1 process"):
        Trainer(new_model(data, TINY_MODEL, 0), make_loader(data.train, 3), sorted_loader(
            data.valid, 64), cfg, progress=False)
    src, trg = length_arrays(data.train)
    assert TokenBucketSampler(src, trg, 3, accumulate=2).group == 2


@pytest.mark.parametrize("field", ["accumulate", "sync_every", "loader_workers"])
def test_senseless_step_settings_are_refused(field):
    """(``loader_workers`` below 0 used to pass: its check sat after a ``return``.)"""
    from seq2seq_lib.config import ConfigError

    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: -1})
