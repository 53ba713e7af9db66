"""Id tensors, padded batches, and length-bucketed batch samplers.

Two datasets give the same (src, trg) id tensors: :class:`TranslationDataset` holds them in
memory; :class:`CachedDataset` reads them lazily from a preprocessed cache (see ``cache.py``).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

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
    ``trg_index``: [n_tokens] int64, the positions in ``trg[1:].flatten()`` that are not
    ``pad_id``, in order (found on the CPU by :func:`collate`, so that the device never turns a
    mask into positions, which waits for the device on CUDA).
    """

    src: torch.Tensor
    src_lens: torch.Tensor
    trg: torch.Tensor
    n_tokens: int | None = None  # target tokens the loss scores (counted on the CPU by collate)
    trg_index: torch.Tensor | None = None
    pad_id: int = Vocab.pad_id  # what trg is padded with (what trg_index leaves out)

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device`` (lengths stay on the CPU); from pinned memory (a loader
        with ``pin_memory=True``) the copy runs while the device computes."""
        index = None if self.trg_index is None else self.trg_index.to(device, non_blocking=True)
        return Batch(self.src.to(device, non_blocking=True), self.src_lens,
                     self.trg.to(device, non_blocking=True), self.n_tokens, index, self.pad_id)

    def pin_memory(self) -> Batch:
        """The batch in page-locked memory (what a DataLoader with ``pin_memory=True`` calls)."""
        index = None if self.trg_index is None else self.trg_index.pin_memory()
        return Batch(self.src.pin_memory(), self.src_lens, self.trg.pin_memory(), self.n_tokens,
                     index, self.pad_id)

    def loss_tokens(self, pad_id: int = Vocab.pad_id) -> int:
        """Target tokens the loss scores: ``n_tokens``, or counted now (on the batch's device)."""
        if self.n_tokens is not None:
            return self.n_tokens
        return int((self.trg[1:] != pad_id).sum())

    def target_index(self, pad_id: int = Vocab.pad_id) -> torch.Tensor:
        """Positions in ``trg[1:].flatten()`` that are not ``pad_id``: [n_tokens] int64;
        ``trg_index`` when it was found for this ``pad_id``, else found now (on the batch's
        device: a batch built by hand)."""
        if self.trg_index is not None and pad_id == self.pad_id:
            return self.trg_index
        return target_positions(self.trg, pad_id)

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


def collate(examples: list[tuple[torch.Tensor, torch.Tensor]] | Batch,
            pad_id: int = Vocab.pad_id) -> Batch:
    """Pad a list of (src, trg) id tensors into one :class:`Batch`, counting its target tokens
    here on the CPU (a batch already padded, as ``CachedDataset.__getitems__`` gives, passes)."""
    if isinstance(examples, Batch):
        return examples
    srcs, trgs = zip(*examples)
    src = pad_sequence(list(srcs), padding_value=pad_id)  # [src_len, batch]
    trg = pad_sequence(list(trgs), padding_value=pad_id)  # [trg_len, batch]
    src_lens = torch.tensor([len(s) for s in srcs], dtype=torch.long)  # [batch]
    n_tokens = sum(len(t) for t in trgs) - len(trgs)  # everything after <sos>
    return Batch(src, src_lens, trg, n_tokens, target_positions(trg, pad_id), pad_id)


def target_positions(trg: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The positions in ``trg[1:].flatten()`` that are not ``pad_id``, in order: [n] int64
    (the rows ``x[1:][trg[1:] != pad_id]`` takes, as ``x[1:].flatten(0, 1)[positions]``)."""
    return torch.nonzero((trg[1:] != pad_id).flatten()).squeeze(1)  # [n_tokens]


class BucketBatchSampler(Sampler[list[int]]):
    """The one batch sampler: batches of similar lengths in a seeded order that changes every
    epoch, of ``batch_size`` sentences or of at most ``max_tokens`` padded tokens, shared among
    training processes, and resumable at any batch.

    **The order.** Examples are shuffled, cut into pools of ``pool_factor`` batches, each pool
    is sorted by its keys and cut into batches, and the batches are shuffled: padding drops
    sharply while the order stays random. The batches of an epoch (its *global* order) depend
    on ``(seed, epoch)`` and the batch size or budget alone, never on the number of processes.
    Everything is NumPy: millions of examples cost a fraction of a second per epoch.

    **A step.** ``num_replicas`` processes × ``accumulate`` micro-steps each take ``group``
    consecutive batches of the global order in every optimizer step: rank ``r``'s micro-step
    ``m`` of a step gets the step's batch ``m * num_replicas + r``. The last step of an epoch
    is filled up with the epoch's first batches, so every process gets the same number of
    batches and none waits for a step the others never take. Every process can count the
    step's target tokens over all processes itself (:meth:`step_tokens`), without a collective.

    **Resuming.** :meth:`set_epoch(epoch, start) <set_epoch>` starts at batch ``start`` of the
    global order (the batches before it are never collated): a run stopped after ``b`` batches
    continues with batch ``b``, also with another number of processes.

    :param lengths: one sort key per example, [n] or [n, k] (sorted by its first column, then
        the next): :meth:`TranslationDataset.bucket_keys` gives (target, source) lengths. A
        batch's cost under ``max_tokens`` is its sentences times its longest key: the size of
        the larger padded tensor; a single example over the budget gets a batch of its own.
    :param batch_size: sentences per batch (per process and micro-step); or ``max_tokens``.
    :param drop_last: leave out the epoch's last batch if it is smaller (``batch_size`` only).
    :param loss_tokens: [n] target tokens each example adds to the loss (needed for
        :meth:`step_tokens`; :func:`make_loader` gives them).
    """

    def __init__(self, lengths: Sequence[int] | Sequence[tuple[int, ...]] | np.ndarray,
                 batch_size: int | None = None, seed: int = 0, pool_factor: int = 50,
                 drop_last: bool = False, num_replicas: int = 1, rank: int = 0, *,
                 max_tokens: int | None = None, accumulate: int = 1,
                 loss_tokens: np.ndarray | None = None):
        if (batch_size is None) == (max_tokens is None):
            raise ValueError("give exactly one of batch_size and max_tokens")
        for name, value in (("batch_size", batch_size), ("max_tokens", max_tokens),
                            ("pool_factor", pool_factor), ("accumulate", accumulate)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        # Only a 16-bit sort key is kept when it fits (the widths and token counts are then
        # tables indexed by it): with the epoch's int32 order, 10 million examples hold about
        # 60 MiB, not 420.
        keys = _integers(lengths)
        keys = keys.reshape(len(keys), -1)  # [n, k]
        self.n = len(keys)
        self._sort_key = _combined(keys)  # [n]: one integer that sorts as the keys
        # [n]: the padded length it costs (16 bits when it fits: cheaper to gather)
        width: np.ndarray | None = _small(keys.max(axis=1, initial=0))
        del keys
        self._typical_width = float(width.mean()) if self.n else 1.0
        loss = None if loss_tokens is None else np.asarray(loss_tokens)
        if loss is not None and loss.shape != (self.n,):
            raise ValueError(f"{self.n} keys but {len(loss)} token counts")
        # [n] the target tokens each example adds to the loss, or None
        loss = None if loss is None else _small(_integers(loss))
        # [2^16] or None: the width and the loss tokens looked up by a 16-bit sort key, so an
        # epoch gathers the keys alone at random (the rest is read off the sorted keys)
        self._width_table = _key_table(self._sort_key, width)
        self._loss_table = _key_table(self._sort_key, loss)
        # [n] or None: what no table holds is carried through each epoch's sort
        self._width = width if self._width_table is None else None
        self._loss_small = loss if self._loss_table is None else None
        self.batch_size, self.max_tokens = batch_size, max_tokens
        self.seed, self.pool_factor, self.drop_last = seed, pool_factor, drop_last
        self.num_replicas, self.rank, self.accumulate = num_replicas, rank, accumulate
        self.epoch = 0
        self.start = 0
        # (epoch, its plan, its batches' loss tokens [b] or None)
        self._cached: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray],
                            np.ndarray | None] | None = None

    @property
    def _has_loss(self) -> bool:
        """Whether it was given ``loss_tokens`` (kept as a table or per example)."""
        return self._loss_table is not None or self._loss_small is not None

    @property
    def group(self) -> int:
        """Batches of the global order one optimizer step takes (all processes together)."""
        return self.num_replicas * self.accumulate

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use ``epoch``'s order from now on, beginning at its batch ``start`` (0-based, of the
        global order: a run resumed in the middle of an epoch continues with the batch it had
        not seen, whatever the number of processes before and now)."""
        self.epoch = epoch
        self.start = start

    def plan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This epoch's global order: (examples in batch order [n], batch starts [b], batch
        sizes [b]); batch j is ``examples[starts[j]:starts[j] + sizes[j]]``. Computed once per
        epoch and kept as arrays: 8 bytes an example, not a Python list of lists."""
        if self._cached is not None and self._cached[0] == self.epoch:
            return self._cached[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = _permutation(rng, self.n)
        pool = self._pool_size()
        want_width = self.max_tokens is not None
        carried = [self._width if want_width else None, self._loss_small]
        keys, (width, loss) = _pool_sort_in_place(order, self._sort_key, pool, carried)
        if want_width and width is None:
            width = self._width_table[keys]
        if loss is None and self._loss_table is not None:
            loss = self._loss_table[keys]
        starts, sizes = self._cut(len(order), width, pool)
        tokens = None
        if loss is not None:  # the batches are contiguous: one sum from each start to the next
            end = int(starts[-1] + sizes[-1]) if len(starts) else 0
            tokens = _batch_sums(loss, starts, end)
        shuffle = rng.permutation(len(sizes))
        self._cached = (self.epoch, (order, starts[shuffle], sizes[shuffle]),
                        None if tokens is None else tokens[shuffle])
        return self._cached[1]

    def n_batches(self) -> int:
        """Batches in this epoch's global order (a token budget gives every epoch its own)."""
        return len(self.plan()[1])

    def _pool_size(self) -> int:
        if self.batch_size is not None:
            return self.batch_size * self.pool_factor
        return max(1, int(self.max_tokens / max(self._typical_width, 1.0))) * self.pool_factor

    def _cut(self, n: int, width: np.ndarray | None, pool: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, sizes) of the batches the sorted pools of ``n`` examples are cut into
        (``width``: [n] the padded length of every example in the sorted order, for a budget)."""
        if self.batch_size is not None:  # a pool holds pool_factor whole batches
            starts = np.arange(0, n, self.batch_size, dtype=np.int64)
            sizes = np.minimum(self.batch_size, n - starts)
            if self.drop_last:  # only the very last batch can be smaller
                whole = sizes == self.batch_size
                starts, sizes = starts[whole], sizes[whole]
            return starts, sizes
        return _budget_cut(width, pool, self.max_tokens)

    def _slots(self) -> np.ndarray:
        """The global batches of every step from ``start`` on: [steps, group] indices into
        :meth:`plan`'s batches (the last step filled up with the epoch's first ones)."""
        n = self.n_batches()
        left = max(n - self.start, 0)
        steps = -(-left // self.group)
        if n == 0:
            return np.zeros((0, self.group), dtype=np.int64)
        return ((self.start + np.arange(steps * self.group)) % n).reshape(steps, self.group)

    def step_tokens(self) -> np.ndarray:
        """Target tokens of every step from ``start`` on, over all processes and micro-steps:
        [steps] int64, the same on every process (what the loss of a step is averaged over)."""
        if not self._has_loss:
            raise ValueError("this sampler was built without loss_tokens=")
        self.plan()
        return self._cached[2][self._slots()].sum(axis=1)

    def _mine(self) -> np.ndarray:
        """This process's batches, in the order it trains on them: [steps * accumulate]."""
        slots = self._slots().reshape(-1, self.accumulate, self.num_replicas)
        return slots[:, :, self.rank].reshape(-1)

    def batches(self) -> list[list[int]]:
        """This process's batches from ``start`` on, as lists of example indices."""
        return list(self)

    def __iter__(self) -> Iterator[list[int]]:
        order, starts, sizes = self.plan()
        mine = self._mine()
        for start, size in zip(starts[mine].tolist(), sizes[mine].tolist()):
            yield order[start : start + size].tolist()

    def __len__(self) -> int:
        """Batches this process trains on from :meth:`set_epoch`'s ``start`` to the epoch's end."""
        return len(self._mine())


class TokenBucketSampler(BucketBatchSampler):
    """:class:`BucketBatchSampler` made from a source and a target length array (both with
    ``<sos>``/``<eos>``, as :func:`length_arrays` gives them), sorted by ``sort_by``'s side
    first; it knows the loss tokens of every example (target length minus ``<sos>``)."""

    def __init__(self, src_lens: np.ndarray, trg_lens: np.ndarray, batch_size: int | None = None,
                 max_tokens: int | None = None, seed: int = 0, pool_factor: int = 50,
                 sort_by: SortBy = "target", **kwargs: Any):
        # 16-bit copies when they fit, made without an int64 one: the stacked keys of 10M
        # examples then cost 40 MB, not 160
        src_lens, trg_lens = (_small(_integers(a)) for a in (src_lens, trg_lens))
        if src_lens.shape != trg_lens.shape:
            raise ValueError(f"{len(src_lens)} source lengths but {len(trg_lens)} targets")
        if trg_lens.dtype == np.uint16 and (not len(trg_lens) or trg_lens.min() >= 1):
            loss = trg_lens - np.uint16(1)  # [n] without <sos>, still 16 bits
        else:
            loss = trg_lens.astype(np.int64) - 1
        super().__init__(_keys(src_lens, trg_lens, sort_by), batch_size, seed, pool_factor,
                         max_tokens=max_tokens, loss_tokens=loss, **kwargs)


def _keys(src_lens: np.ndarray, trg_lens: np.ndarray, sort_by: SortBy) -> np.ndarray:
    if sort_by == "target":
        return np.stack([trg_lens, src_lens], axis=1)
    if sort_by == "source":
        return np.stack([src_lens, trg_lens], axis=1)
    raise ValueError(f"sort_by must be 'target' or 'source', got {sort_by!r}")


def _combined(keys: np.ndarray) -> np.ndarray:
    """One integer per row of ``keys`` [n, k] (small non-negative lengths) that sorts as the
    rows do, in 16 bits when it fits (NumPy then sorts it in linear time). It is computed in
    place in the narrowest type that holds it: no temporary wider than the result."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    columns = list(keys.T)
    radixes = [max(int(c.max()), 0) + 1 for c in columns]
    span = int(np.prod(radixes, dtype=object))  # lengths: the combined values are below it
    dtype = (np.int64 if min(int(c.min()) for c in columns) < 0  # not lengths: as it always was
             else np.uint16 if span <= 1 << 16 else np.uint32 if span <= 1 << 32 else np.int64)
    combined = columns[0].astype(dtype)
    for radix, column in zip(radixes[1:], columns[1:]):
        combined *= dtype(radix)
        np.add(combined, column, out=combined, casting="unsafe")  # (values checked to fit)
    return combined


def _integers(values: Any) -> np.ndarray:
    """``values`` as an integer array, without a copy when it is one already."""
    array = np.asarray(values)
    return array if array.dtype.kind in "iu" else array.astype(np.int64)


def _small(values: np.ndarray) -> np.ndarray:
    """``values`` (integers) as uint16 when they fit, else as they are (no int64 copy first)."""
    if values.dtype == np.uint16:
        return values
    if len(values) and 0 <= values.min() and values.max() < 1 << 16:
        return values.astype(np.uint16)
    return values


def _key_table(sort_key: np.ndarray, values: np.ndarray | None) -> np.ndarray | None:
    """``values`` [n] as a table indexed by the 16-bit ``sort_key`` [n] (``table[sort_key] ==
    values``), or None where the key is wider or one key has several values."""
    if values is None or sort_key.dtype != np.uint16:
        return None
    table = np.zeros(1 << 16, dtype=values.dtype)
    table[sort_key] = values
    block = 1 << 20  # checked a block at a time: no temporary as long as the keys
    same = all(np.array_equal(table[sort_key[i : i + block]], values[i : i + block])
               for i in range(0, len(values), block))
    return table if same else None


_SHUFFLE_BUCKETS = 256  # uint8 labels: NumPy groups them by a linear-time radix sort
_BLOCKED_FROM = 1 << 20  # below this the array fits in the CPU's cache: one plain permutation


def _permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` [n] (int64; int32 past a million).

    A plain Fisher-Yates shuffle of millions of entries spends its time on cache misses. Past
    a million, every entry draws one of 256 buckets at random, a stable radix sort groups the
    buckets (entries in each keep their order), and each bucket, small enough for the cache, is
    shuffled on its own: still uniform (the entries are treated alike throughout), about twice
    as fast at 10M. Smaller ``n`` get ``rng.permutation(n)``, the same order as always.
    """
    if n < _BLOCKED_FROM:
        return rng.permutation(n)
    labels = rng.integers(0, _SHUFFLE_BUCKETS, n, dtype=np.uint8)
    order, counts = _grouped(labels)  # [n]: bucket 0's entries, then bucket 1's...
    low = 0
    for high in np.cumsum(counts).tolist():
        rng.shuffle(order[low:high])
        low = high
    return order


def _batch_sums(values: np.ndarray, starts: np.ndarray, end: int, block: int = 1 << 20
                ) -> np.ndarray:
    """The sums of ``values[starts[j]:starts[j + 1]]`` (the last one up to ``end``) [b] int64,
    for increasing ``starts`` [b]; about ``block`` values at a time (``np.add.reduceat`` with an
    int64 result would first make an int64 copy of all of them)."""
    out = np.zeros(len(starts), dtype=np.int64)
    bounds = np.append(starts, end)  # [b + 1]
    i = 0
    while i < len(starts):
        # the batches from i whose values fit in one block (at least one batch)
        j = max(i + 1, int(np.searchsorted(bounds, bounds[i] + block, side="right")) - 1)
        low, high = int(bounds[i]), int(bounds[j])
        out[i:j] = np.add.reduceat(values[low:high].astype(np.int64), starts[i:j] - low)
        i = j
    return out


def _grouped(labels: np.ndarray, block: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """(``np.argsort(labels, kind="stable")`` of uint8 ``labels`` [n], the count of each label
    [256]), made a block at a time straight into int32 (int64 past 2^31 entries): the same
    order, without an int64 array as long as the epoch (``np.bincount`` of all the labels
    would make one too)."""
    n = len(labels)
    order = np.empty(n, dtype=np.int32 if n < 1 << 31 else np.int64)
    blocks = range(0, n, block)
    per_block = [np.bincount(labels[low : low + block], minlength=_SHUFFLE_BUCKETS)
                 for low in blocks]
    counts = np.sum(per_block, axis=0, dtype=np.int64) if per_block else np.zeros(
        _SHUFFLE_BUCKETS, np.int64)
    cursor = np.cumsum(counts) - counts  # [buckets] where each bucket's next entry goes
    for low, part_counts in zip(blocks, per_block):
        part = labels[low : low + block]
        by_label = np.argsort(part, kind="stable")  # [block]: the block's entries grouped
        first = np.cumsum(part_counts) - part_counts  # [buckets] where each starts in the block
        # sorted position p of bucket b goes to cursor[b] + (p - first[b])
        to = np.arange(len(part)) + np.repeat(cursor - first, part_counts)
        order[to] = by_label + low
        cursor += part_counts
    return order, counts


def _pool_sort_in_place(order: np.ndarray, sort_key: np.ndarray, pool: int,
                        carried: list[np.ndarray | None]
                        ) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Sort every pool of ``pool`` consecutive entries of ``order`` [n] by ``sort_key[order]``
    (ties keep their order), in place; return the keys in the sorted order [n], and each array
    of ``carried`` (per example, [n], or None) taken in the sorted order.

    About a million examples at a time are the rows of a [pools, pool] matrix, each row sorted
    on its own (a radix sort when the keys fit in 16 bits; a row fits in the CPU's cache), and
    the keys and the carried arrays are gathered block by block: no temporary array is as long
    as the epoch, and no second sort of everything by pool is needed.
    """
    n = len(order)
    keys = np.empty(n, dtype=sort_key.dtype)
    out = [None if a is None else np.empty(n, dtype=a.dtype) for a in carried]
    rows = max(1, (1 << 20) // pool)  # about a million examples a step
    for a in range(0, n, rows * pool):
        b = min(a + rows * pool, n)
        cuts = [(a, b - (b - a) % pool, pool), (b - (b - a) % pool, b, (b - a) % pool)]
        for lo, hi, size in cuts:  # the whole pools, then a last shorter one
            if hi <= lo:
                continue
            block = order[lo:hi].reshape(-1, size)  # [pools, pool]
            block_keys = sort_key[block]  # [pools, pool]
            by_key = np.argsort(block_keys, axis=1, kind="stable")
            keys[lo:hi] = np.take_along_axis(block_keys, by_key, axis=1).reshape(-1)
            for src, dst in zip(carried, out):
                if src is not None:
                    dst[lo:hi] = np.take_along_axis(src[block], by_key, axis=1).reshape(-1)
            order[lo:hi] = np.take_along_axis(block, by_key, axis=1).reshape(-1)
    return keys, out


def _budget_cut(width: np.ndarray, pool: int, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, sizes) of batches of at most ``max_tokens`` (sentences × widest) over the
    sorted pools of ``width`` [n]. One vectorised step per batch position cuts the next batch
    of every pool at once: the running maximum of the widths times the sentence count never
    decreases, so a batch ends before its first position over the budget."""
    n = len(width)
    first_of_pool = np.arange(0, n, pool, dtype=np.int64)
    group = max(1, (1 << 20) // pool)  # pools cut together: temporaries of about 1M entries
    parts = [_budget_cut_pools(width, first_of_pool[g : g + group], pool, max_tokens)
             for g in range(0, len(first_of_pool), group)]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])


def _budget_cut_pools(width: np.ndarray, first_of_pool: np.ndarray, pool: int, max_tokens: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_budget_cut` of the pools that begin at ``first_of_pool`` [pools] (in order)."""
    n = len(width)
    pool_end = np.minimum(first_of_pool + pool, n)
    current = first_of_pool.copy()
    too_wide = np.int64(max_tokens + 1)  # past a pool's end: over the budget whatever the count
    starts, sizes = [], []
    active = np.flatnonzero(current < pool_end)
    while len(active):
        # no batch holds more than max_tokens // (its first width) sentences
        first = int(np.maximum(width[current[active]], 1).min())
        window = min(pool, max_tokens // first + 1)
        reach = np.arange(window, dtype=np.int64)
        at = current[active, None] + reach  # [pools, window]
        widths = np.where(at < pool_end[active, None], width[np.minimum(at, n - 1)], too_wide)
        cost = np.maximum.accumulate(widths, axis=1) * (reach + 1)
        over = cost > max_tokens
        first_over = np.where(over.any(axis=1), over.argmax(axis=1), window)
        size = np.maximum(first_over, 1)
        starts.append(current[active])
        sizes.append(size)
        current[active] += size
        active = active[current[active] < pool_end[active]]
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    start_arr, size_arr = np.concatenate(starts), np.concatenate(sizes)
    ordered = np.argsort(start_arr)
    return start_arr[ordered], size_arr[ordered]


def make_loader(dataset: TranslationDataset | CachedDataset, batch_size: int, bucket: bool = True,
                shuffle: bool = True, seed: int = 0, sort_by: SortBy = "target",
                max_tokens: int | None = None, num_workers: int | None = None,
                num_replicas: int = 1, rank: int = 0, accumulate: int = 1,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader of :class:`Batch` objects.

    :param bucket: group similar lengths (less padding, :class:`BucketBatchSampler`); with
        ``bucket=False`` and ``shuffle=False`` this is the lesson's plain loader.
    :param sort_by: which side's length the buckets group first (see
        :meth:`TranslationDataset.bucket_keys`); ``"target"`` is the faster one to train on.
    :param max_tokens: bucketed batches of at most this many padded tokens instead of
        ``batch_size`` sentences; a :class:`CachedDataset` brings its own choice
        (``load_cache(..., max_tokens=)``) when this is None.
    :param num_workers: DataLoader worker processes that prefetch batches (default 0: none, or
        the :class:`CachedDataset`'s own choice).
    :param num_replicas: / :param rank: / :param accumulate: this process's share of the
        length buckets when several processes (and micro-steps) make one optimizer step
        (buckets only; see :class:`BucketBatchSampler`).
    :param pin_memory: batches in page-locked memory, so that copying them to a CUDA GPU
        overlaps with its work (use it when training on CUDA).
    """
    if isinstance(dataset, CachedDataset):
        num_workers = dataset.num_workers if num_workers is None else num_workers
        if bucket and max_tokens is None:
            max_tokens = dataset.max_tokens
    if max_tokens is not None and not bucket:
        raise ValueError("max_tokens bounds bucketed batches: use it with bucket=True")
    options = {"num_workers": num_workers or 0, "persistent_workers": bool(num_workers),
               "pin_memory": pin_memory, "collate_fn": partial(collate, pad_id=dataset.pad_id)}
    if bucket:
        src_lens, trg_lens = length_arrays(dataset)
        sampler = TokenBucketSampler(src_lens, trg_lens, None if max_tokens else batch_size,
                                     max_tokens, seed=seed, sort_by=sort_by,
                                     num_replicas=num_replicas, rank=rank, accumulate=accumulate)
        return DataLoader(dataset, batch_sampler=sampler, **options)
    if num_replicas > 1:
        raise ValueError("several processes need length buckets (bucket=True): they give "
                         "every process the same number of batches")
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, **options)


def sorted_loader(dataset: TranslationDataset | CachedDataset, batch_size: int,
                  num_replicas: int = 1, rank: int = 0, pin_memory: bool = False) -> DataLoader:
    """Evaluation batches: the examples sorted by (target, source) length, cut into batches in
    that fixed order, so that padding costs almost nothing; with several processes each takes
    every ``num_replicas``-th example of the sorted order (batch counts may differ by one:
    evaluation sums over the processes once, at the end). Iterating it draws no random number."""
    src_lens, trg_lens = length_arrays(dataset)
    order = np.lexsort((src_lens, trg_lens))[rank::num_replicas]
    batches = [chunk.tolist() for chunk in np.split(order, range(batch_size, len(order),
                                                                 batch_size))] if len(order) else []
    return DataLoader(dataset, batch_sampler=batches, pin_memory=pin_memory,
                      collate_fn=partial(collate, pad_id=dataset.pad_id),
                      generator=torch.Generator().manual_seed(0))  # not torch's global one


def length_arrays(dataset: TranslationDataset | CachedDataset) -> tuple[np.ndarray, np.ndarray]:
    """Source and target length of every example, ``<sos>``/``<eos>`` included: int64 arrays;
    for a :class:`CachedDataset` uint16 ones where they fit (10 million examples then take 40
    MB, not 160)."""
    if isinstance(dataset, CachedDataset):
        return dataset.lengths(), dataset.lengths("trg")
    if isinstance(dataset, TranslationDataset):
        return (np.fromiter(map(len, dataset.src), np.int64, len(dataset.src)),
                np.fromiter(map(len, dataset.trg), np.int64, len(dataset.trg)))
    pairs = [dataset[i] for i in range(len(dataset))]  # e.g. a Subset
    return (np.array([len(s) for s, _ in pairs], np.int64),
            np.array([len(t) for _, t in pairs], np.int64))


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
    grow with the corpus: the pages it reads stay in the operating system's file cache (mapped
    for random access, so that a batch maps the pages it reads and not their neighbours).

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
            self._maps[name] = _map_npy(self.folder / cache_file(self.split, name))
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

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        """A whole padded batch, read and padded with NumPy (no tensor per sentence); what a
        DataLoader asks for, and :func:`collate` passes it through."""
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) and not (-self._len <= idx.min() and idx.max() < self._len):
            raise IndexError(f"an index in {indices!r} is out of range for {self._len} sentences")
        idx %= max(self._len, 1)
        src, src_lens = self._padded("src", idx)
        trg, trg_lens = self._padded("trg", idx)
        index = np.flatnonzero(trg[1:] != self.pad_id)  # [n_tokens]: see Batch.trg_index
        return Batch(torch.from_numpy(src), torch.from_numpy(src_lens), torch.from_numpy(trg),
                     int(trg_lens.sum()) - len(idx), torch.from_numpy(index), self.pad_id)

    def _padded(self, side: Literal["src", "trg"], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sentences ``idx`` of one side with ``<sos>``/``<eos>``, padded: ([len, batch] int64,
        their lengths [batch] int64)."""
        offsets = self.array(f"{side}_offsets")
        starts = np.asarray(offsets[idx], dtype=np.int64)
        lens = np.asarray(offsets[idx + 1], dtype=np.int64) - starts  # [batch], without sos/eos
        out = np.full((len(idx), int(lens.max(initial=0)) + 2), self.pad_id, dtype=np.int64)
        rows = np.arange(len(idx))
        out[:, 0] = Vocab.sos_id
        out[rows, lens + 1] = Vocab.eos_id
        row_of = np.repeat(rows, lens)  # one entry per token
        within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        out[row_of, within + 1] = self.array(side)[np.repeat(starts, lens) + within]
        return np.ascontiguousarray(out.T), lens + 2

    def lengths(self, side: Literal["src", "trg"] = "src") -> np.ndarray:
        """Length of every example on one side, ``<sos>``/``<eos>`` included (as
        TranslationDataset): uint16 where they fit, else int64; read from the file a block at a
        time, so no int64 copy of the whole split is made and no mapped page stays behind."""
        path = self.folder / cache_file(self.split, f"{side}_lens")
        out: np.ndarray = np.empty(len(self), dtype=np.uint16)
        done = 0
        for block in _npy_blocks(path):
            if block.size and (block.min() < 0 or int(block.max()) + 2 >= 1 << 16):
                return np.asarray(self.array(f"{side}_lens"), dtype=np.int64) + 2  # rare
            out[done : done + len(block)] = block + 2
            done += len(block)
        return out

    def n_target_tokens(self) -> int:
        """Target tokens the loss is computed on (everything after ``<sos>``)."""
        path = self.folder / cache_file(self.split, "trg_lens")
        return sum(int(block.sum(dtype=np.int64)) for block in _npy_blocks(path)) + self._len


def _read_npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the ``.npy`` file open at ``fh``, which is left at its first value."""
    version = np.lib.format.read_magic(fh)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran_order, dtype = read(fh)
    if fortran_order and len(shape) > 1:
        raise ValueError(f"{fh.name}: a Fortran-ordered array; the cache writes C order")
    return shape, dtype


def _npy_blocks(path: Path, block: int = 1 << 20) -> Iterator[np.ndarray]:
    """The values of a flat ``.npy`` file, ``block`` at a time, by plain reads (the pages go to
    the operating system's file cache, not to this process's memory)."""
    with path.open("rb") as fh:
        shape, dtype = _read_npy_header(fh)
        left = int(np.prod(shape))
        while left > 0:
            values = np.fromfile(fh, dtype=dtype, count=min(block, left))
            if not values.size:
                raise ValueError(f"{path}: {left} values missing at the end of the file")
            left -= len(values)
            yield values


def _map_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped read-only, advised for random access where the platform
    allows it: a batch reads a few bytes at each of 64 random places, and without the advice
    the kernel reads ahead and maps about 16 neighbouring pages at each one, so that a few
    dozen batches would map most of a 10M-pair cache into the process."""
    with path.open("rb") as fh:
        shape, dtype = _read_npy_header(fh)
        offset = fh.tell()
        if offset == path.stat().st_size:  # no values: nothing to map
            return np.zeros(shape, dtype=dtype)
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mmap, "MADV_RANDOM"):  # (not on Windows)
        mapped.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mapped, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
