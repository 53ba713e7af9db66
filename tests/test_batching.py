import pytest
import torch

from seq2seq_lib import BucketBatchSampler, collate, make_loader, padding_share
from seq2seq_lib.vocab import Vocab


def test_collate_pads_with_pad_id_and_keeps_lengths():
    ex = [(torch.tensor([2, 5, 3]), torch.tensor([2, 7, 8, 3])), (torch.tensor([2, 3]), torch.tensor([2, 3]))]
    b = collate(ex)
    assert b.src.shape == (3, 2) and b.trg.shape == (4, 2)
    assert b.src[:, 1].tolist() == [2, 3, Vocab.pad_id]
    assert b.src_lens.tolist() == [3, 2]


def test_bucket_sampler_covers_every_example_once_and_reshuffles():
    lengths = [i % 17 + 1 for i in range(500)]
    s = BucketBatchSampler(lengths, 32, seed=1)
    first = list(s)
    assert sorted(i for b in first for i in b) == list(range(500))
    assert len(first) == len(s) == 16
    assert list(s) == first  # same epoch, same order
    s.set_epoch(1)
    assert list(s) != first


def test_bucketing_cuts_padding(tiny_data):
    _, data = tiny_data
    bucketed = padding_share(make_loader(data.train, 4, bucket=True))
    plain = padding_share(make_loader(data.train, 4, bucket=False, shuffle=False))
    assert bucketed < plain


def test_dataset_adds_sos_and_eos(tiny_data):
    _, data = tiny_data
    src, trg = data.train[0]
    assert src[0] == Vocab.sos_id and src[-1] == Vocab.eos_id
    assert trg[0] == Vocab.sos_id and trg[-1] == Vocab.eos_id


def test_buckets_sort_by_target_length_first(tiny_data):
    """The decoder runs over padded target steps, so the default buckets group target lengths."""
    _, data = tiny_data
    keys = data.train.bucket_keys()
    assert keys[0] == (len(data.train.trg[0]), len(data.train.src[0]))
    assert data.train.bucket_keys("source")[0] == keys[0][::-1]

    def trg_padding(sort_by):
        batches = list(make_loader(data.train, 4, sort_by=sort_by))
        return sum(int((b.trg == Vocab.pad_id).sum()) for b in batches)

    assert trg_padding("target") <= trg_padding("source")


def test_shards_of_the_buckets_have_equal_counts_and_cover_every_example():
    """Each of 3 processes gets its part of every step: step k joins batches 3k, 3k+1, 3k+2
    of the one global order; the last step is filled up with the epoch's first batches, so
    the counts agree and no process waits at the last step."""
    lengths = [i % 13 + 1 for i in range(250)]  # 8 batches of 32: not a multiple of 3
    whole = list(BucketBatchSampler(lengths, 32, seed=4))
    shards = [BucketBatchSampler(lengths, 32, seed=4, num_replicas=3, rank=r) for r in range(3)]
    got = [list(s) for s in shards]
    assert [len(g) for g in got] == [len(s) for s in shards] == [3, 3, 3]
    interleaved = [b for step in zip(*got) for b in step]
    assert interleaved == whole + whole[:1]  # 9 batches: the first one twice
    assert sorted(i for b in interleaved[:8] for i in b) == list(range(250))
    for s in shards:
        s.set_epoch(2)
    assert [b for step in zip(*map(list, shards)) for b in step] != interleaved


def test_set_epoch_with_a_start_skips_the_batches_already_seen():
    """``start`` counts batches of the global order: 2 processes started at batch 4 take
    batches 4 and 5 in their first step, whatever the number of processes before."""
    lengths = [i % 9 + 1 for i in range(100)]
    whole = BucketBatchSampler(lengths, 8, seed=2)
    whole.set_epoch(3)
    order = list(whole)  # 13 batches
    s = BucketBatchSampler(lengths, 8, seed=2, num_replicas=2, rank=1)
    s.set_epoch(3, start=4)
    assert list(s) == [order[i % 13] for i in (5, 7, 9, 11, 13)] and len(s) == 5
    s.set_epoch(3, start=13)
    assert list(s) == [] and len(s) == 0


def test_a_plain_loader_cannot_be_shared_by_several_processes(tiny_data):
    _, data = tiny_data
    with pytest.raises(ValueError, match="length buckets"):
        make_loader(data.train, 4, bucket=False, num_replicas=2, rank=0)
    loader = make_loader(data.train, 4, num_replicas=2, rank=1)
    assert len(loader) == 3  # 20 pairs: 5 batches of 4, filled up to 6, 3 each


def test_the_token_sampler_also_starts_an_epoch_at_a_given_batch():
    """Both samplers have ``set_epoch(epoch, start)``: a resumed run reads no batch twice."""
    import numpy as np

    from seq2seq_lib.batching import TokenBucketSampler

    rng = np.random.default_rng(3)
    src, trg = rng.integers(3, 30, 200), rng.integers(3, 30, 200)
    for budget in ({"max_tokens": 120}, {"batch_size": 16}):
        s = TokenBucketSampler(src, trg, seed=2, pool_factor=2, **budget)
        s.set_epoch(3)
        full = list(s)
        s.set_epoch(3, start=4)
        assert list(s) == full[4:] and len(s) == len(full) - 4 == s.n_batches() - 4
        s.set_epoch(3)
        assert list(s) == full
