"""Which batches an epoch trains on, in which order, with which random numbers: the same every
run, and after a resume exactly as when the run stopped, without reading the batches already
trained on, also with another number of processes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..batching import Batch
from ..parallel import DistContext
from ..train import set_seed
from .state import TrainState, set_rng_state

# what a checkpoint's ``batch`` counts: 2 = batches of the sampler's global order (any number
# of processes); older checkpoints counted one process's batches of another order
POSITION_VERSION = 2
Step = tuple[list[Batch], int]  # (this process's micro-batches, target tokens over all processes)


class EpochOrder:
    """The training loader's epochs, as optimizer steps.

    A :class:`~seq2seq_lib.batching.BucketBatchSampler` gives each epoch its global order of
    batches; a step takes ``world_size × accumulate`` of them (this process's ``accumulate``
    micro-batches) and its token count over all processes comes from the sampler, with no
    collective. ``TrainState.batch`` counts the global batches of the epoch trained on.

    Any other loader (one process only) is read from its beginning, the batches before
    ``start`` skipped (or, for a batch sampler with ``set_epoch(epoch, start)``, started there),
    and ``accumulate`` consecutive batches make a step.

    :param seed: the run's seed; every epoch and every process gets its own from it.
    """

    def __init__(self, loader: DataLoader, seed: int, dist: DistContext, device: torch.device,
                 accumulate: int = 1):
        self.loader, self.seed, self.dist, self.device = loader, seed, dist, device
        self.accumulate = accumulate
        sampler = getattr(loader, "batch_sampler", None)
        self.sampler = sampler if hasattr(sampler, "step_tokens") else None
        if self.sampler is not None and self.sampler.group != dist.world_size * accumulate:
            raise ValueError(
                f"the training loader's sampler makes steps of {self.sampler.group} batches, "
                f"but {dist.world_size} processes x accumulate {accumulate} need "
                f"{dist.world_size * accumulate}: build it with make_loader(..., num_replicas=, "
                "rank=, accumulate=)")
        if self.sampler is None and dist.enabled:
            raise ValueError("several processes need the length buckets of make_loader(..., "
                             "num_replicas=, rank=): they give every process its share of each step")
        self.rng_to_restore: dict[str, Any] | None = None  # a mid-epoch resume's generators
        self._counted: tuple[int, int] | None = None

    @property
    def group(self) -> int:
        """Global batches one step takes."""
        return self.dist.world_size * self.accumulate

    def n_batches(self, epoch: int) -> int:
        """Batches in ``epoch``'s global order (a token budget gives every epoch its own)."""
        if self._counted is None or self._counted[0] != epoch:
            self._counted = (epoch, self._count(epoch))
        return self._counted[1]

    def _count(self, epoch: int) -> int:
        sampler = getattr(self.loader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch, start=0)
        if self.sampler is not None:
            return self.sampler.n_batches()
        return len(self.loader)

    def n_steps(self, epoch: int, start: int) -> int:
        """Steps from ``epoch``'s global batch ``start`` to its end."""
        return -(-max(self.n_batches(epoch) - start, 0) // self.group)

    def continue_from(self, state: TrainState, saved: dict[str, Any]) -> None:
        """Where a run resumed from ``saved`` (a ``trainer_state``) goes on: the next global
        batch of its epoch (whatever the number of processes then and now), with the
        generators as they were when the number is the same; or the next epoch if that one
        was done, or is now cut into other batches (another batch size or budget)."""
        n_saved = saved["batches_per_epoch"]
        same_order = (saved.get("position") == POSITION_VERSION
                      and n_saved == self.n_batches(state.epoch))
        if state.batch >= n_saved or (state.batch and not same_order):
            state.epoch, state.batch = state.epoch + 1, 0
        rngs = saved.get("rng") or []
        if state.batch and len(rngs) == self.dist.world_size:
            self.rng_to_restore = rngs[self.dist.rank]

    def epoch_seed(self, epoch: int) -> int:
        """The same every run; another one per process (their dropout differs)."""
        return self.seed + epoch + 1_000_003 * self.dist.rank

    def steps(self, epoch: int, start: int = 0) -> Iterator[Step]:
        """``epoch``'s steps from its global batch ``start`` on, with the random numbers seeded."""
        self.n_batches(epoch)
        skip = self._position(epoch, start)
        if not start:
            set_seed(self.epoch_seed(epoch))  # dropout and sampling repeat, also after a resume
        batches = iter(self.loader)  # (making the iterator draws from torch's generator)
        if self.rng_to_restore is not None:
            set_rng_state(self.rng_to_restore, self.device)  # as when the run stopped
            self.rng_to_restore = None
        elif start:
            set_seed(self.epoch_seed(epoch) + 7919 * start)
        batches = itertools.islice(batches, skip, None)
        if self.sampler is not None:
            for n_tokens in self.sampler.step_tokens().tolist():
                yield [next(batches) for _ in range(self.accumulate)], n_tokens
            return
        while micro := list(itertools.islice(batches, self.accumulate)):
            yield micro, sum(b.loss_tokens() for b in micro)  # one process: counted here

    def _position(self, epoch: int, start: int) -> int:
        """Put the sampler at ``epoch``'s batch ``start``; returns the batches still to skip."""
        sampler = getattr(self.loader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch, start=start)
            return 0
        return start


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
