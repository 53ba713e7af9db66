"""Id tensors, padded batches, and a length-bucketed batch sampler."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, Sampler

from .vocab import Vocab

SortBy = Literal["target", "source"]


@dataclass
class Batch:
    """A padded batch, time-major as in the lesson.

    ``src``: [src_len, batch]; ``src_lens``: [batch] (on the CPU, as packing wants);
    ``trg``: [trg_len, batch], starting with ``<sos>`` and ending with ``<eos>`` before padding.
    """

    src: torch.Tensor
    src_lens: torch.Tensor
    trg: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device`` (lengths stay on the CPU)."""
        return Batch(self.src.to(device, non_blocking=True), self.src_lens,
                     self.trg.to(device, non_blocking=True))

    @property
    def batch_size(self) -> int:
        return self.src.shape[1]


class TranslationDataset(Dataset):
    """Pairs of already tokenized sentences, encoded once into id tensors with ``<sos>``/``<eos>``."""

    def __init__(self, src_tokens: Sequence[list[str]], trg_tokens: Sequence[list[str]],
                 src_vocab: Vocab, trg_vocab: Vocab):
        if len(src_tokens) != len(trg_tokens):
            raise ValueError(f"{len(src_tokens)} source sentences but {len(trg_tokens)} targets")
        self.src = [torch.tensor(src_vocab.encode(t, add_sos_eos=True)) for t in src_tokens]
        self.trg = [torch.tensor(trg_vocab.encode(t, add_sos_eos=True)) for t in trg_tokens]
        self.pad_id = src_vocab.pad_id

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.src[idx], self.trg[idx]

    def lengths(self) -> list[int]:
        """Source length of every example."""
        return [len(s) for s in self.src]

    def bucket_keys(self, sort_by: SortBy = "target") -> list[tuple[int, int]]:
        """Sort keys for :class:`BucketBatchSampler`, one per example.

        ``"target"`` gives (target length, source length): the encoder packs its input, so
        source padding costs almost nothing, while the teacher-forced decoder runs over every
        padded target step. ``"source"`` gives (source length, target length).
        """
        pairs = [(len(t), len(s)) for s, t in zip(self.src, self.trg)]
        if sort_by == "target":
            return pairs
        if sort_by == "source":
            return [(s, t) for t, s in pairs]
        raise ValueError(f"sort_by must be 'target' or 'source', got {sort_by!r}")

    def n_target_tokens(self) -> int:
        """Target tokens the loss is computed on (everything after ``<sos>``)."""
        return sum(len(t) - 1 for t in self.trg)


def collate(examples: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int = Vocab.pad_id) -> Batch:
    """Pad a list of (src, trg) id tensors into one :class:`Batch`."""
    srcs, trgs = zip(*examples)
    src = pad_sequence(list(srcs), padding_value=pad_id)  # [src_len, batch]
    trg = pad_sequence(list(trgs), padding_value=pad_id)  # [trg_len, batch]
    src_lens = torch.tensor([len(s) for s in srcs], dtype=torch.long)  # [batch]
    return Batch(src, src_lens, trg)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of examples of similar length, in a shuffled order that changes every epoch.

    Examples are shuffled, cut into pools of ``pool_factor`` batches, each pool is sorted by
    length and cut into batches, and the batches are shuffled: padding drops sharply while the
    order stays random. Call :meth:`set_epoch` to get a new (seeded) order.

    :param lengths: one sort key per example: a length, or a tuple such as
        :meth:`TranslationDataset.bucket_keys` gives (sorted by its first item, then the next).
    :param num_replicas: / :param rank: several training processes: every process builds the
        same order (same seed) and takes every ``num_replicas``-th batch from its ``rank`` on;
        the list is first filled up with its own first batches, so every process gets the
        same number of batches and none waits for a step the others never take.
    """

    def __init__(self, lengths: Sequence[int] | Sequence[tuple[int, ...]], batch_size: int,
                 seed: int = 0, pool_factor: int = 50, drop_last: bool = False,
                 num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool_factor = pool_factor
        self.drop_last = drop_last
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use ``epoch``'s order from now on, beginning at its batch number ``start`` (0-based;
        a run resumed in the middle of an epoch continues with the batch it had not seen)."""
        self.epoch = epoch
        self.start = start

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        pool = self.batch_size * self.pool_factor
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lambda i: self.lengths[i])
            for b in range(0, len(chunk), self.batch_size):
                batch = chunk[b : b + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        rng.shuffle(batches)
        if self.num_replicas > 1 and batches:
            total = len(self) * self.num_replicas  # filled up with the first batches
            batches = [batches[i % len(batches)] for i in range(total)][self.rank :: self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()[self.start :]

    def __len__(self) -> int:
        """Batches per epoch (of this process), whatever :meth:`set_epoch`'s ``start``."""
        full, rest = divmod(len(self.lengths), self.batch_size)
        n = full if self.drop_last else full + (rest > 0)
        return -(-n // self.num_replicas)  # rounded up


def make_loader(dataset: TranslationDataset, batch_size: int, bucket: bool = True,
                shuffle: bool = True, seed: int = 0, sort_by: SortBy = "target",
                num_replicas: int = 1, rank: int = 0) -> DataLoader:
    """A DataLoader of :class:`Batch` objects.

    :param bucket: group similar lengths (less padding); with ``bucket=False`` and
        ``shuffle=False`` this is the lesson's plain loader.
    :param sort_by: which side's length the buckets group first (see
        :meth:`TranslationDataset.bucket_keys`); ``"target"`` is the faster one to train on.
    :param num_replicas: / :param rank: this process's share of the length buckets when
        several processes train together (see :class:`BucketBatchSampler`; buckets only).
    """
    pad = partial(collate, pad_id=dataset.pad_id)
    if bucket:
        sampler = BucketBatchSampler(dataset.bucket_keys(sort_by), batch_size, seed=seed,
                                     num_replicas=num_replicas, rank=rank)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=pad)
    if num_replicas > 1:
        raise ValueError("several processes need length buckets (bucket=True): they give "
                         "every process the same number of batches")
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=pad, generator=gen)


def padding_share(loader: DataLoader) -> float:
    """Share of source and target positions in ``loader``'s batches that are padding."""
    pad = total = 0
    for batch in loader:
        for t in (batch.src, batch.trg):
            total += t.numel()
            pad += int((t == Vocab.pad_id).sum())
    return pad / total if total else 0.0
