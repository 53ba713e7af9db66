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
