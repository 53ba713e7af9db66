"""Id tensors, padded batches, and length-bucketed batch samplers.

Two datasets give the same (src, trg) id tensors: :class:`TranslationDataset` holds them in
memory; :class:`CachedDataset` reads them lazily from a preprocessed cache (see ``cache.py``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
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


def make_loader(dataset: TranslationDataset | CachedDataset, batch_size: int, bucket: bool = True,
                shuffle: bool = True, seed: int = 0, sort_by: SortBy = "target",
                max_tokens: int | None = None, num_workers: int | None = None,
                num_replicas: int = 1, rank: int = 0) -> DataLoader:
    """A DataLoader of :class:`Batch` objects.

    :param bucket: group similar lengths (less padding); with ``bucket=False`` and
        ``shuffle=False`` this is the lesson's plain loader.
    :param sort_by: which side's length the buckets group first (see
        :meth:`TranslationDataset.bucket_keys`); ``"target"`` is the faster one to train on.
    :param max_tokens: bucketed batches of at most this many padded tokens instead of
        ``batch_size`` sentences (see :class:`TokenBucketSampler`); a :class:`CachedDataset`
        brings its own choice (``load_cache(..., max_tokens=)``) when this is None.
    :param num_workers: DataLoader worker processes that prefetch batches (default 0: none, or
        the :class:`CachedDataset`'s own choice).
    :param num_replicas: / :param rank: this process's share of the length buckets when
        several processes train together (see :class:`BucketBatchSampler`; buckets only).
    """
    if isinstance(dataset, CachedDataset):
        num_workers = dataset.num_workers if num_workers is None else num_workers
        if bucket and max_tokens is None:
            max_tokens = dataset.max_tokens
    if max_tokens is not None and not bucket:
        raise ValueError("max_tokens bounds bucketed batches: use it with bucket=True")
    workers = {"num_workers": num_workers or 0, "persistent_workers": bool(num_workers)}
    pad = partial(collate, pad_id=dataset.pad_id)
    if bucket and (max_tokens is not None or isinstance(dataset, CachedDataset)):
        src_lens, trg_lens = length_arrays(dataset)
        sampler = TokenBucketSampler(src_lens, trg_lens, None if max_tokens else batch_size,
                                     max_tokens, seed=seed, sort_by=sort_by)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=pad, **workers)
    if bucket:
        sampler = BucketBatchSampler(dataset.bucket_keys(sort_by), batch_size, seed=seed,
                                     num_replicas=num_replicas, rank=rank)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=pad, **workers)
    if num_replicas > 1:
        raise ValueError("several processes need length buckets (bucket=True): they give "
                         "every process the same number of batches")
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=pad, generator=gen,
                      **workers)


def padding_share(loader: DataLoader) -> float:
    """Share of source and target positions in ``loader``'s batches that are padding."""
    pad = total = 0
    for batch in loader:
        for t in (batch.src, batch.trg):
            total += t.numel()
            pad += int((t == Vocab.pad_id).sum())
    return pad / total if total else 0.0


# ---------------------------------------------------------------- from a preprocessed cache


def cache_file(split: str, name: str) -> str:
    """File name of one array of a cache split: ``cache_file("train", "src_lens")`` is
    ``"train.src_lens.npy"``. ``name`` is ``src``/``trg`` (the ids of all sentences, one flat
    array), ``src_offsets``/``trg_offsets`` (int64, one more than sentences: sentence i is
    ``ids[offsets[i]:offsets[i + 1]]``) or ``src_lens``/``trg_lens`` (tokens per sentence,
    ``<sos>``/``<eos>`` not included)."""
    return f"{split}.{name}.npy"


class CachedDataset(Dataset):
    """One split of a preprocessed cache, read lazily from memory-mapped NumPy arrays.

    ``dataset[i]`` is what :class:`TranslationDataset` gives for the same sentence: two int64
    tensors with ``<sos>``/``<eos>``. Only the folder name is pickled, so DataLoader worker
    processes (fork or spawn) each map the files themselves, and the memory of a process does not
    grow with the corpus: the pages it reads stay in the operating system's file cache.

    :param max_tokens: the token budget :func:`make_loader` uses for this split's buckets.
    :param num_workers: the DataLoader worker processes :func:`make_loader` starts for it.
    """

    def __init__(self, folder: str | Path, split: str, pad_id: int = Vocab.pad_id,
                 max_tokens: int | None = None, num_workers: int = 0):
        self.folder, self.split, self.pad_id = Path(folder), split, pad_id
        self.max_tokens, self.num_workers = max_tokens, num_workers
        self._maps: dict[str, np.ndarray] = {}
        self._len = int(self.array("src_lens").shape[0])

    def array(self, name: str) -> np.ndarray:
        """One of the split's arrays (see :func:`cache_file`), memory-mapped read-only."""
        if name not in self._maps:
            self._maps[name] = np.load(self.folder / cache_file(self.split, name), mmap_mode="r")
        return self._maps[name]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}  # file names travel, not the mapped arrays

    def __len__(self) -> int:
        return self._len

    def sentence(self, side: Literal["src", "trg"], idx: int) -> torch.Tensor:
        """Ids of sentence ``idx`` on one side, with ``<sos>``/``<eos>``: [len + 2]."""
        if not -self._len <= idx < self._len:
            raise IndexError(f"index {idx} out of range for {self._len} sentences")
        idx %= self._len
        offsets = self.array(f"{side}_offsets")
        ids = self.array(side)[offsets[idx] : offsets[idx + 1]]
        out = np.empty(len(ids) + 2, dtype=np.int64)
        out[0], out[1:-1], out[-1] = Vocab.sos_id, ids, Vocab.eos_id
        return torch.from_numpy(out)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sentence("src", idx), self.sentence("trg", idx)

    def lengths(self) -> np.ndarray:
        """Source length of every example, ``<sos>``/``<eos>`` included (as TranslationDataset)."""
        return np.asarray(self.array("src_lens"), dtype=np.int64) + 2

    def n_target_tokens(self) -> int:
        """Target tokens the loss is computed on (everything after ``<sos>``)."""
        return int(np.asarray(self.array("trg_lens"), dtype=np.int64).sum()) + self._len


def length_arrays(dataset: TranslationDataset | CachedDataset) -> tuple[np.ndarray, np.ndarray]:
    """Source and target length of every example as int64 arrays, ``<sos>``/``<eos>`` included."""
    if isinstance(dataset, CachedDataset):
        return dataset.lengths(), np.asarray(dataset.array("trg_lens"), dtype=np.int64) + 2
    return (np.array([len(s) for s in dataset.src], dtype=np.int64),
            np.array([len(t) for t in dataset.trg], dtype=np.int64))


class TokenBucketSampler(Sampler[list[int]]):
    """Length buckets from NumPy length arrays: batches of ``batch_size`` sentences, or of at
    most ``max_tokens`` padded tokens (fairseq's ``--max-tokens``).

    The same recipe as :class:`BucketBatchSampler` (shuffle, pools of ``pool_factor`` batches
    sorted by length, batches shuffled; :meth:`set_epoch` for a new seeded order), vectorised, so
    millions of examples cost a fraction of a second and no Python list of keys.

    A batch's cost is its sentences times its longest sentence on either side, padding included:
    the size of the larger padded tensor. A single example over the budget gets a batch of its own.

    :param src_lens: source lengths, [n]; :param trg_lens: target lengths, [n].
    :param sort_by: ``"target"``: sort pools by target then source length; ``"source"``: reverse.
    """

    def __init__(self, src_lens: np.ndarray, trg_lens: np.ndarray, batch_size: int | None = None,
                 max_tokens: int | None = None, seed: int = 0, pool_factor: int = 50,
                 sort_by: SortBy = "target"):
        if (batch_size is None) == (max_tokens is None):
            raise ValueError("give exactly one of batch_size and max_tokens")
        if (batch_size or max_tokens or 0) < 1:
            raise ValueError(f"batch_size and max_tokens must be >= 1, got {batch_size or max_tokens}")
        if sort_by not in ("target", "source"):
            raise ValueError(f"sort_by must be 'target' or 'source', got {sort_by!r}")
        self.src_lens = np.asarray(src_lens, dtype=np.int64)
        self.trg_lens = np.asarray(trg_lens, dtype=np.int64)
        if self.src_lens.shape != self.trg_lens.shape:
            raise ValueError(f"{len(self.src_lens)} source lengths but {len(self.trg_lens)} targets")
        self.batch_size, self.max_tokens = batch_size, max_tokens
        self.seed, self.pool_factor, self.sort_by = seed, pool_factor, sort_by
        self.epoch = 0
        self.start = 0
        self._cached: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use ``epoch``'s order from now on, beginning at its batch number ``start`` (0-based;
        a run resumed in the middle of an epoch continues with the batch it had not seen)."""
        self.epoch = epoch
        self.start = start

    def _pool_size(self) -> int:
        if self.batch_size is not None:
            return self.batch_size * self.pool_factor
        longest = np.maximum(self.src_lens, self.trg_lens)
        typical = float(longest.mean()) if len(longest) else 1.0
        return max(1, int(self.max_tokens / max(typical, 1.0))) * self.pool_factor

    def _cut(self, chunk: np.ndarray) -> list[int]:
        """Sizes of the batches one sorted pool is cut into."""
        if self.batch_size is not None:
            full, rest = divmod(len(chunk), self.batch_size)
            return [self.batch_size] * full + ([rest] if rest else [])
        longest = np.maximum(self.src_lens[chunk], self.trg_lens[chunk]).tolist()
        sizes, start, widest = [], 0, 0
        for i, n in enumerate(longest):
            wider = max(widest, n)
            if i > start and wider * (i - start + 1) > self.max_tokens:
                sizes.append(i - start)
                start, wider = i, n
            widest = wider
        if len(chunk):
            sizes.append(len(chunk) - start)
        return sizes

    def _epoch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This epoch's (examples in batch order, batch starts, batch sizes), computed once per
        epoch and kept as arrays: 8 bytes an example, not a Python list of lists."""
        if self._cached is not None and self._cached[0] == self.epoch:
            return self._cached[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.src_lens))
        first, then = ((self.trg_lens, self.src_lens) if self.sort_by == "target"
                       else (self.src_lens, self.trg_lens))
        pool = self._pool_size()
        sizes: list[int] = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            order[start : start + pool] = chunk[np.lexsort((then[chunk], first[chunk]))]
            sizes += self._cut(order[start : start + pool])
        size_arr = np.array(sizes, dtype=np.int64)
        starts = np.cumsum(size_arr) - size_arr
        shuffle = rng.permutation(len(size_arr))
        self._cached = (self.epoch, (order, starts[shuffle], size_arr[shuffle]))
        return self._cached[1]

    def batches(self) -> list[list[int]]:
        """This epoch's batches from ``start`` on, as lists of example indices."""
        return list(self)

    def __iter__(self) -> Iterator[list[int]]:
        order, starts, sizes = self._epoch()
        for start, size in zip(starts[self.start :].tolist(), sizes[self.start :].tolist()):
            yield order[start : start + size].tolist()

    def __len__(self) -> int:
        """Batches in this epoch (a token budget gives every epoch its own count), whatever
        :meth:`set_epoch`'s ``start``."""
        return len(self._epoch()[1])
