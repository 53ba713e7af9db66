"""The sampler's pool sort, done a block of pools at a time in place: the same permutation as
one stable sort of every pool, with the per-example arrays carried along."""

from __future__ import annotations

import numpy as np
import pytest

from seq2seq_lib.batching import _pool_sort_in_place


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
    got_width, nothing = _pool_sort_in_place(order, key, pool, [width, None])
    assert np.array_equal(order, expected)
    assert np.array_equal(got_width, width[expected]) and got_width.dtype == np.uint16
    assert nothing is None
