"""Which batches an epoch trains on, in which order, with which random numbers: the same every
run, and after a resume exactly as when the run stopped, without reading the batches already
trained on."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..parallel import DistContext
from ..train import set_seed
from .state import TrainState, set_rng_state


class EpochOrder:
    """The training loader's epochs.

    A batch sampler with ``set_epoch(epoch, start)`` (both of :mod:`seq2seq_lib.batching`'s)
    gets each epoch's own order and starts it at batch ``start``; any other loader is read from
    its beginning and the batches before ``start`` are skipped.

    :param seed: the run's seed; every epoch and every process gets its own from it.
    """

    def __init__(self, loader: DataLoader, seed: int, dist: DistContext, device: torch.device):
        self.loader, self.seed, self.dist, self.device = loader, seed, dist, device
        self.rng_to_restore: dict[str, Any] | None = None  # a mid-epoch resume's generators

    def n_batches(self, epoch: int) -> int:
        """Batches in ``epoch`` (a token budget gives every epoch its own count)."""
        self._position(epoch, 0)
        return len(self.loader)

    def _position(self, epoch: int, start: int) -> int:
        """Put the sampler at ``epoch``'s batch ``start``; returns the batches still to skip."""
        sampler = getattr(self.loader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch, start=start)
            return 0
        return start

    def continue_from(self, state: TrainState, saved: dict[str, Any]) -> None:
        """Where a run resumed from ``saved`` (a ``trainer_state``) goes on: the next batch of
        its epoch, with the generators as they were, or the next epoch if that one was done or
        is now cut into other batches (another batch size, another number of processes)."""
        n_saved = saved["batches_per_epoch"]
        if state.batch >= n_saved or (state.batch and (
                n_saved != self.n_batches(state.epoch)
                or saved.get("world_size", 1) != self.dist.world_size)):
            state.epoch, state.batch = state.epoch + 1, 0
        rngs = saved.get("rng") or []
        if state.batch and len(rngs) == self.dist.world_size:
            self.rng_to_restore = rngs[self.dist.rank]

    def epoch_seed(self, epoch: int) -> int:
        """The same every run; another one per process (their dropout differs)."""
        return self.seed + epoch + 1_000_003 * self.dist.rank

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """``epoch``'s batches from its batch ``start`` on, with the random numbers seeded."""
        skip = self._position(epoch, start)
        if not start:
            set_seed(self.epoch_seed(epoch))  # dropout and sampling repeat, also after a resume
        batches = iter(self.loader)  # (making the iterator draws from torch's generator)
        if self.rng_to_restore is not None:
            set_rng_state(self.rng_to_restore, self.device)  # as when the run stopped
            self.rng_to_restore = None
        elif start:
            set_seed(self.epoch_seed(epoch) + 7919 * start)
        return itertools.islice(batches, skip, None)


def check_loaders(order: EpochOrder, epoch: int, valid_loader: DataLoader,
                  dist: DistContext) -> None:
    """Every process has as many training batches as the others, and there is something to
    validate on (refused with a ValueError on every process alike)."""
    counts = dist.gather((order.n_batches(epoch), len(valid_loader)))
    if len({n_train for n_train, _ in counts}) > 1:
        raise ValueError(f"the training processes have different numbers of batches per epoch "
                         f"({[n for n, _ in counts]}): give each its share of the length "
                         "buckets (make_loader(..., num_replicas=, rank=))")
    if sum(n_valid for _, n_valid in counts) == 0:
        raise ValueError("the validation set is empty: training needs held-out pairs to "
                         "validate on (a larger corpus, or a larger validation fraction)")
