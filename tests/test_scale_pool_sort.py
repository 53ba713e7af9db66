"""The sampler's epoch plan at scale: the pool sort, done a block of pools at a time in place
(the same permutation as one stable sort of every pool, with the per-example arrays carried
along), the cache-blocked permutation, and widths and token counts read off the sorted keys."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from seq2seq_lib import batching
from seq2seq_lib.batching import TokenBucketSampler, _pool_sort_in_place


@pytest.mark.parametrize(("n", "pool", "high"), [(1, 5, 3), (1000, 7, 4), (5000, 64, 70_000),
                                                 (3000, 3000, 9), (20_000, 1 << 19, 50)])
def test_every_pool_is_sorted_stably_and_the_arrays_follow(n, pool, high):
    rng = np.random.default_rng(n)
    key = rng.integers(0, high, n).astype(np.uint16 if high < 1 << 16 else np.int64)
    width = rng.integers(0, 60, n).astype(np.uint16)
    order = rng.permutation(n)
    expected = order.copy()
    for lo in range(0, n, pool):  # the reference: each pool sorted by its keys on its own
        chunk = expected[lo : lo + pool]
        expected[lo : lo + pool] = chunk[np.argsort(key[chunk], kind="stable")]
    keys, (got_width, nothing) = _pool_sort_in_place(order, key, pool, [width, None])
    assert np.array_equal(order, expected)
    assert np.array_equal(keys, key[expected]) and keys.dtype == key.dtype
    assert np.array_equal(got_width, width[expected]) and got_width.dtype == np.uint16
    assert nothing is None


def test_the_blocked_permutation_is_uniform(monkeypatch):
    """Past a million entries the permutation is drawn bucket by bucket; made to do so at n=4,
    every one of the 24 orders comes out about equally often (a chi-square test at p=0.001)."""
    monkeypatch.setattr(batching, "_BLOCKED_FROM", 2)
    monkeypatch.setattr(batching, "_SHUFFLE_BUCKETS", 3)
    rng = np.random.default_rng(0)
    draws = 24_000
    seen = Counter(tuple(batching._permutation(rng, 4).tolist()) for _ in range(draws))
    assert sorted(seen) == sorted(itertools.permutations(range(4)))
    expected = draws / 24
    chi2 = sum((count - expected) ** 2 / expected for count in seen.values())
    assert chi2 < 49.7  # the 0.999 quantile of chi-square with 23 degrees of freedom


def test_the_blocked_permutation_covers_every_entry_once():
    order = batching._permutation(np.random.default_rng(1), batching._BLOCKED_FROM + 12_345)
    assert order.dtype == np.int32  # half the memory of int64
    assert np.array_equal(np.sort(order), np.arange(len(order)))
    assert not np.array_equal(order[:1000], np.sort(order[:1000]))


def test_widths_and_token_counts_read_off_the_keys_give_the_same_plan():
    """The sampler looks the widths and loss tokens up by the sorted 16-bit keys when they are a
    function of the key; the plan is the one that carrying them through the sort gives."""
    rng = np.random.default_rng(3)
    src, trg = rng.integers(3, 40, 5000), rng.integers(3, 40, 5000)
    fast = TokenBucketSampler(src, trg, max_tokens=700, seed=5)
    slow = TokenBucketSampler(src, trg, max_tokens=700, seed=5)
    assert fast._width_table is not None and fast._loss_table is not None
    # the carried path: the same widths and counts, per example
    slow._width, slow._loss_small = slow._width_table[slow._sort_key], slow._loss_table[slow._sort_key]
    slow._width_table = slow._loss_table = None
    assert fast._width is None and fast._loss_small is None  # only the 16-bit keys are kept
    for epoch in (0, 1):
        fast.set_epoch(epoch), slow.set_epoch(epoch)
        for got, want in zip(fast.plan(), slow.plan()):
            assert np.array_equal(got, want)
        assert np.array_equal(fast.step_tokens(), slow.step_tokens())


def test_token_counts_that_are_not_a_function_of_the_key_are_carried():
    keys = np.array([3, 3, 5, 5])
    sampler = batching.BucketBatchSampler(keys, batch_size=2, loss_tokens=np.array([1, 2, 3, 4]))
    assert sampler._loss_table is None and sampler._width_table is not None
    order, starts, sizes = sampler.plan()
    tokens = {frozenset(order[a : a + b].tolist()): t
              for a, b, t in zip(starts, sizes, sampler.step_tokens())}
    assert tokens == {frozenset({0, 1}): 3, frozenset({2, 3}): 7}
