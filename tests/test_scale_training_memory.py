"""Training from a large cache without large temporaries: the length arrays are read as
16-bit numbers a block at a time, the sampler keeps only a 16-bit sort key, and the epoch's
order is grouped straight into int32. Each change gives the same batches as before; the
memory bounds are counted exactly by ``tracemalloc`` (NumPy reports its arrays to it)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from seq2seq_lib import batching
from seq2seq_lib.batching import CachedDataset, TokenBucketSampler, cache_file, length_arrays


def test_grouping_by_label_is_the_stable_argsort():
    rng = np.random.default_rng(0)
    for n, block in ((0, 4), (1, 4), (999, 100), (5000, 1000), (4096, 4096), (70_000, 1 << 20)):
        labels = rng.integers(0, batching._SHUFFLE_BUCKETS, n, dtype=np.uint8)
        got, counts = batching._grouped(labels, block=block)
        assert got.dtype == np.int32
        assert np.array_equal(got, np.argsort(labels, kind="stable"))
        assert np.array_equal(counts, np.bincount(labels, minlength=batching._SHUFFLE_BUCKETS))


@pytest.mark.parametrize(("high", "dtype"), [(200, np.uint16), (3000, np.uint32), (70_000, np.int64)])
def test_the_combined_key_takes_the_narrowest_type_and_sorts_as_the_rows(high, dtype):
    rng = np.random.default_rng(high)
    keys = rng.integers(0, high, (4000, 2)).astype(np.uint16 if high < 1 << 16 else np.int64)
    combined = batching._combined(keys)
    assert combined.dtype == dtype
    radix = int(keys[:, 1].max()) + 1
    assert np.array_equal(combined.astype(np.int64), keys[:, 0].astype(np.int64) * radix + keys[:, 1])
    negative = batching._combined(np.array([[-1, 2], [3, 0]]))  # not lengths: int64 as before
    assert negative.dtype == np.int64 and negative[0] < negative[1]


def test_a_sampler_from_16_bit_lengths_gives_the_batches_of_int64_ones():
    rng = np.random.default_rng(1)
    src, trg = rng.integers(3, 50, 20_000), rng.integers(3, 60, 20_000)
    for budget in ({"batch_size": 32}, {"max_tokens": 900}):
        wide = TokenBucketSampler(src, trg, seed=4, **budget)
        narrow = TokenBucketSampler(src.astype(np.uint16), trg.astype(np.uint16), seed=4, **budget)
        for epoch in (0, 3):
            wide.set_epoch(epoch), narrow.set_epoch(epoch)
            assert list(wide) == list(narrow)
            assert np.array_equal(wide.step_tokens(), narrow.step_tokens())


def _peak_bytes(make):
    tracemalloc.start()
    try:
        result = make()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _sampler_peaks(n: int) -> tuple[TokenBucketSampler, int, int]:
    rng = np.random.default_rng(2)
    src = rng.integers(3, 60, n, dtype=np.uint16)
    trg = rng.integers(3, 60, n, dtype=np.uint16)
    sampler, build = _peak_bytes(lambda: TokenBucketSampler(src, trg, max_tokens=4096, seed=0))
    _, plan = _peak_bytes(sampler.plan)
    return sampler, build, plan


def test_building_a_sampler_and_planning_an_epoch_grow_by_a_few_bytes_an_example():
    """What each further example adds to the peak (two sizes, so that the blocks of fixed size
    cancel out). Measured: 10 bytes to build, 10 to plan (before these changes 28 and 19, with
    the int64 lengths it was given on top); an int64 copy of one length array, or an int64
    order, would add 8 alone. What stays is a 16-bit key and the int32 order: 6 bytes."""
    small, build_small, plan_small = _sampler_peaks(2_000_000)
    large, build_large, plan_large = _sampler_peaks(4_000_000)
    build, plan = ((b - a) / 2_000_000 for a, b in ((build_small, build_large), (plan_small, plan_large)))
    assert build < 12, f"building the sampler: {build:.1f} bytes more an example"
    assert plan < 12, f"planning an epoch: {plan:.1f} bytes more an example"
    assert large._width is None and large._loss_small is None
    assert large._sort_key.nbytes + large.plan()[0].nbytes == 6 * 4_000_000


def _fake_split(folder, lens):
    """A train split with the given source and target lengths (ids and offsets left out: only
    the lengths are read here)."""
    for side in ("src", "trg"):
        np.save(folder / cache_file("train", f"{side}_lens"), np.asarray(lens, dtype=np.int32))
    return CachedDataset(folder, "train")


def test_cached_lengths_are_16_bit_where_they_fit_and_int64_where_not(tmp_path):
    short = _fake_split(tmp_path, np.arange(3_000_000) % 61)
    src, trg = length_arrays(short)
    assert src.dtype == trg.dtype == np.uint16
    assert np.array_equal(src, np.arange(3_000_000) % 61 + 2)
    assert short.n_target_tokens() == int((trg.astype(np.int64) - 1).sum())
    long = _fake_split(tmp_path, [5, 65_534, 7])
    src, _ = length_arrays(long)
    assert src.dtype == np.int64 and src.tolist() == [7, 65_536, 9]


def test_the_mapped_arrays_are_the_saved_ones_read_only(tmp_path):
    values = np.arange(10_000, dtype=np.int64) * 3
    np.save(tmp_path / "a.npy", values)
    np.save(tmp_path / "empty.npy", np.zeros(0, dtype=np.uint16))
    mapped = batching._map_npy(tmp_path / "a.npy")
    assert mapped.dtype == np.int64 and np.array_equal(mapped, values)
    assert not mapped.flags.writeable
    empty = batching._map_npy(tmp_path / "empty.npy")
    assert empty.shape == (0,) and empty.dtype == np.uint16


def test_batch_token_sums_a_block_at_a_time_are_reduceat_s():
    rng = np.random.default_rng(4)
    for n, block in ((1, 1), (1000, 7), (50_000, 333), (50_000, 1 << 20)):
        values = rng.integers(0, 60, n).astype(np.uint16)
        starts = np.unique(np.concatenate([[0], rng.integers(0, n, max(1, n // 40))]))
        end = n - int(rng.integers(0, 2)) if n > 1 else n
        starts = starts[starts < end]
        want = np.add.reduceat(values[:end], starts, dtype=np.int64)
        assert np.array_equal(batching._batch_sums(values, starts, end, block=block), want)
