"""The one sampler at scale: the same global order of batches for any number of processes,
step token counts every process computes alone, the token-budget cut vectorised (and equal
to the per-example rule), and the hot path's CPU-side work (token counts in collate, NumPy
padding of a cache, length-sorted evaluation batches)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seq2seq_lib import BucketBatchSampler, collate
from seq2seq_lib.batching import TokenBucketSampler, length_arrays, sorted_loader
from seq2seq_lib.vocab import Vocab


def lengths(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(3, 40, n), rng.integers(3, 50, n)


def per_example_cut(width: list[int], max_tokens: int) -> list[int]:
    """The rule the vectorised cut follows, one example at a time (the former code)."""
    sizes, start, widest = [], 0, 0
    for i, n in enumerate(width):
        wider = max(widest, n)
        if i > start and wider * (i - start + 1) > max_tokens:
            sizes.append(i - start)
            start, wider = i, n
        widest = wider
    return sizes + ([len(width) - start] if width else [])


@pytest.mark.parametrize("max_tokens", [40, 300, 2000])
def test_the_vectorised_budget_cut_is_the_per_example_rule(max_tokens):
    src, trg = lengths(3000, seed=max_tokens)
    sampler = TokenBucketSampler(src, trg, max_tokens=max_tokens, seed=1, pool_factor=3)
    order, starts, sizes = sampler.plan()
    pool = sampler._pool_size()
    width = np.maximum(src, trg)[order]
    expected = [size for p in range(0, len(order), pool)
                for size in per_example_cut(width[p : p + pool].tolist(), max_tokens)]
    assert sorted(zip(starts.tolist(), sizes.tolist())) == list(zip(
        np.cumsum([0, *expected[:-1]]).tolist(), expected))
    assert sorted(order.tolist()) == list(range(3000))


@pytest.mark.parametrize("budget", [{"batch_size": 16}, {"max_tokens": 400}])
@pytest.mark.parametrize("world, accumulate", [(2, 1), (3, 1), (1, 4), (2, 2)])
def test_every_world_size_trains_on_the_same_global_batches(budget, world, accumulate):
    """Step k of W processes × K micro-steps takes global batches kWK ... kWK + WK - 1 (the
    last step filled up from the epoch's start); every process counts the step's tokens."""
    src, trg = lengths(500, seed=7)
    alone = TokenBucketSampler(src, trg, seed=3, **budget)
    alone.set_epoch(2)
    order = list(alone)
    group = world * accumulate
    shards = [TokenBucketSampler(src, trg, seed=3, num_replicas=world, rank=r,
                                 accumulate=accumulate, **budget) for r in range(world)]
    for s in shards:
        s.set_epoch(2, start=3)
    got = [list(s) for s in shards]
    steps = len(got[0]) // accumulate
    assert steps == -(-(len(order) - 3) // group) and len({len(g) for g in got}) == 1
    for k in range(steps):
        joined = [got[r][k * accumulate + m] for m in range(accumulate) for r in range(world)]
        assert joined == [order[(3 + k * group + j) % len(order)] for j in range(group)]
        tokens = sum(int((trg[b] - 1).sum()) for b in joined)
        assert all(int(s.step_tokens()[k]) == tokens for s in shards)


def test_an_epoch_is_planned_in_numpy_arrays():
    """The epoch's order is NumPy arrays, not lists (bench/bench_scale.py times 10M)."""
    src, trg = lengths(1_000_000, seed=1)
    sampler = TokenBucketSampler(src, trg, max_tokens=4000, num_replicas=2, rank=1)
    order, starts, sizes = sampler.plan()
    assert order.dtype == np.int64 and int(sizes.sum()) == 1_000_000
    assert len(sampler.step_tokens()) == -(-len(sizes) // 2)


def test_collate_counts_the_target_tokens_on_the_cpu():
    ex = [(torch.tensor([2, 5, 3]), torch.tensor([2, 7, 8, 3])), (torch.tensor([2, 3]),
                                                                   torch.tensor([2, 3]))]
    batch = collate(ex)
    assert batch.n_tokens == 4 == int((batch.trg[1:] != Vocab.pad_id).sum())
    assert batch.to("cpu").n_tokens == 4 and collate(batch) is batch


def test_evaluation_batches_are_sorted_by_length_and_shared(tiny_data):
    _, data = tiny_data
    _, trg_lens = length_arrays(data.valid)
    loader = sorted_loader(data.valid, 4)
    widths = [b.trg.shape[0] for b in loader]
    assert widths == sorted(widths) and sum(b.batch_size for b in loader) == len(data.valid)
    shares = [sorted_loader(data.valid, 4, num_replicas=2, rank=r) for r in range(2)]
    assert sum(b.batch_size for s in shares for b in s) == len(data.valid)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    list(loader)
    assert torch.equal(torch.get_rng_state(), before)  # draws nothing from dropout's generator


def test_the_one_sampler_keeps_the_notebook_interface(tiny_data):
    """Notebook 03 builds it from ``bucket_keys`` with a ``pool_factor``."""
    _, data = tiny_data
    sampler = BucketBatchSampler(data.train.bucket_keys(), 4, seed=0, pool_factor=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(data.train)))
    with pytest.raises(ValueError, match="exactly one"):
        BucketBatchSampler([1, 2], 2, max_tokens=10)
