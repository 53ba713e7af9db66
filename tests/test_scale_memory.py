"""Preprocessing memory that does not grow with the number of pairs: the second pass reads and
writes every split a block at a time (no whole split, no memory map), and choosing a vocabulary
builds a dictionary of about ``max_size`` types, not of every type of the corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seq2seq_lib import cache as cache_mod
from seq2seq_lib.cache import _TypeTable, build_cache
from seq2seq_lib.config import DataConfig
from seq2seq_lib.data import read_parallel
from seq2seq_lib.vocab import SPECIALS, Vocab

DATA = Path(__file__).parent / "data"


def test_the_second_pass_works_a_block_at_a_time(monkeypatch, tmp_path):
    pairs = read_parallel(DATA / "tiny.zh", DATA / "tiny.en").pairs * 3
    cfg = DataConfig(zh_tokens="char", min_freq=1, valid_frac=0.2, test_frac=0.2)
    whole = build_cache(pairs, tmp_path / "whole", cfg, progress=False)

    reads: list[int] = []
    fromfile = np.fromfile

    def counted(*args, **kwargs):
        reads.append(kwargs.get("count", -1))
        return fromfile(*args, **kwargs)

    def no_map(*args, **kwargs):
        raise AssertionError("a memory map: its pages count as the process's memory")

    monkeypatch.setattr(cache_mod, "BLOCK", 5)
    monkeypatch.setattr(np, "fromfile", counted)
    monkeypatch.setattr(np, "memmap", no_map)
    monkeypatch.setattr(np.lib.format, "open_memmap", no_map)
    blocks = build_cache(pairs, tmp_path / "blocks", cfg, progress=False)
    monkeypatch.undo()

    # every scratch file was read 5 values at a time, never whole (count -1)
    assert reads and set(reads) == {5}
    assert blocks.manifest["splits"] == whole.manifest["splits"]
    for name in whole.manifest["files"]:
        if name != "manifest.json":
            assert (blocks.path / name).read_bytes() == (whole.path / name).read_bytes(), name
    # the files are the .npy files np.save writes
    train = np.load(blocks.path / "train.src_offsets.npy")
    assert train[0] == 0 and train[-1] == len(np.load(blocks.path / "train.src.npy"))


@pytest.mark.parametrize("seed", range(6))
def test_the_type_table_chooses_from_a_short_dictionary(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    n_types = int(rng.integers(50, 400))
    types = [f"t{i}" for i in range(n_types)] + list(SPECIALS)  # specials may be text too
    counts = rng.zipf(1.6, len(types)).clip(max=40) * rng.integers(0, 2, len(types))  # ties, 0s
    table = _TypeTable()
    table.merge(types, np.arange(len(types)), counts)
    min_freq, max_size = int(rng.integers(1, 4)), int(rng.choice([4, 5, 20, 60, 10_000]))

    seen: list[int] = []
    from_counts = Vocab.from_counts.__func__
    monkeypatch.setattr(Vocab, "from_counts", classmethod(
        lambda cls, c, *a: (seen.append(len(c)), from_counts(cls, c, *a))[1]))
    got = table.vocab(min_freq, max_size)
    monkeypatch.undo()

    assert got.itos == Vocab.from_counts(dict(zip(types, counts.tolist())), min_freq, max_size).itos
    # only the types that can be chosen: at least max_size-th most frequent, ties included
    floor = max(min_freq, int(np.sort(counts)[-max_size]) if max_size < len(types) else 0)
    assert seen == [int((counts >= floor).sum())]
    assert seen[0] < len(types) or max_size >= len(types) or floor <= 1
