"""The preprocessed cache: streaming reads, the hash split, ids equal to the in-memory pipeline's,
idempotence, failures that leave nothing behind, the memory-mapped dataset, token budgets,
training from a cache, and the command line."""

import errno
import io
import multiprocessing
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL

from seq2seq_lib import cache as cache_mod
from seq2seq_lib.batching import (
    CachedDataset,
    TokenBucketSampler,
    TranslationDataset,
    collate,
    length_arrays,
    make_loader,
)
from seq2seq_lib.cache import (
    CacheError,
    build_cache,
    load_cache,
    preprocess,
    read_manifest,
)
from seq2seq_lib.checkpoint import load_checkpoint
from seq2seq_lib.cli import main
from seq2seq_lib.config import DataConfig, TrainConfig
from seq2seq_lib.course import train_translator
from seq2seq_lib.data import (
    Corpus,
    CorpusError,
    load_hsk,
    read_parallel,
    read_tsv,
    split_of,
    split_pairs,
    stream_parallel,
    stream_tsv,
)
from seq2seq_lib.pipeline import prepare_data, tokenize_pairs
from seq2seq_lib.vocab import Vocab

DATA = Path(__file__).parent / "data"
TINY = dict(source="parallel", src_path=str(DATA / "tiny.zh"), trg_path=str(DATA / "tiny.en"))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def leftovers(folder: Path) -> list[str]:
    """Hidden scratch folders a cache build may leave beside its --out."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def hsk_files(tmp_path_factory):
    """The first 1,200 HSK pairs as aligned files, plus one empty pair to drop."""
    folder = tmp_path_factory.mktemp("hsk")
    pairs = load_hsk().pairs[:1200]
    zh = "\n".join(z for z, _ in pairs[:600]) + "\n \n" + "\n".join(z for z, _ in pairs[600:]) + "\n"
    en = "\n".join(e for _, e in pairs[:600]) + "\nempty\n" + "\n".join(e for _, e in pairs[600:]) + "\n"
    return write(folder / "a.zh", zh.encode()), write(folder / "a.en", en.encode())


@pytest.fixture(scope="module")
def hsk_cfg(hsk_files):
    # a small vocabulary and max_len, so the cut by max_size, the ties and the filter all matter
    return DataConfig(source="parallel", src_path=str(hsk_files[0]), trg_path=str(hsk_files[1]),
                      min_freq=2, max_size=300, max_len=12, valid_frac=0.1, test_frac=0.1)


@pytest.fixture(scope="module")
def hsk_cache(hsk_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("caches") / "hsk"
    result = preprocess(hsk_cfg, out, workers=1, progress=False)
    return result, load_cache(out)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    out = tmp_path_factory.mktemp("caches") / "tiny"
    preprocess(DataConfig(**TINY, min_freq=1, valid_frac=0.2, test_frac=0.2), out, workers=1,
               progress=False)
    return out


# ---------------------------------------------------------------- streaming reads and the split


def test_streamed_pairs_equal_the_whole_file_readers(tmp_path):
    zh = write(tmp_path / "c.zh", "\ufeff你好\r\n \r\n谢谢\r\n".encode())
    en = write(tmp_path / "c.en", b"hello\r\nnothing\r\nthanks")
    stream = stream_parallel(zh, en)
    assert list(stream) == read_parallel(zh, en).pairs == [("你好", "hello"), ("谢谢", "thanks")]
    assert stream.dropped == read_parallel(zh, en).dropped and stream.n_pairs == 2
    assert [n for n, _ in stream.numbered()] == [1, 3]  # line numbers, which choose the split
    assert list(stream_tsv(DATA / "tiny.tsv")) == read_tsv(DATA / "tiny.tsv").pairs


@pytest.mark.parametrize("zh, en, tsv", [
    ("一\n二\n三\n".encode(), b"one\ntwo\n", None),                    # more Chinese lines
    ("一\n".encode(), b"one\ntwo\nthree\n", None),                      # more English lines
    ("一\n二\n".encode() + b"\xff\xfe bad\n", b"one\ntwo\nthree\n", None),  # bad UTF-8
    (None, None, "hello\t你好\nno tab here\n".encode()),                # TSV without a tab
])
def test_streamed_errors_are_the_whole_file_errors(tmp_path, zh, en, tsv):
    if tsv is None:
        args = write(tmp_path / "b.zh", zh), write(tmp_path / "b.en", en)
        whole, streamed = read_parallel, stream_parallel
    else:
        args = (write(tmp_path / "b.tsv", tsv),)
        whole, streamed = read_tsv, stream_tsv
    with pytest.raises(CorpusError) as expected:
        whole(*args)
    with pytest.raises(CorpusError) as got:
        list(streamed(*args))
    assert str(got.value) == str(expected.value)


def test_hash_split_is_stable_and_close_to_the_fractions():
    splits = [split_of(n, 0, 0.05, 0.1) for n in range(1, 20_001)]
    assert splits == [split_of(n, 0, 0.05, 0.1) for n in range(1, 20_001)]
    assert abs(splits.count("test") / 20_000 - 0.1) < 0.01
    assert abs(splits.count("valid") / 20_000 - 0.05) < 0.01
    assert splits != [split_of(n, 1, 0.05, 0.1) for n in range(1, 20_001)]  # the seed matters
    with pytest.raises(ValueError) as whole:
        split_pairs([], 0.6, 0.5)
    with pytest.raises(ValueError) as hashed:
        split_of(1, 0, 0.6, 0.5)
    assert str(hashed.value) == str(whole.value)


# ---------------------------------------------------------------- same ids as the in-memory pipeline


@pytest.mark.parametrize("counts", [
    {"a": 3, "b": 3, "c": 1, "d": 2, "<unk>": 9, "e": 2},
    {f"w{i}": i % 4 + 1 for i in range(40)},
])
@pytest.mark.parametrize("min_freq, max_size", [(1, None), (2, None), (1, 6), (2, 7)])
def test_vocab_from_counts_is_vocab_build(counts, min_freq, max_size):
    sentences = [[tok] * n for tok, n in counts.items()]
    assert Vocab.from_counts(counts, min_freq, max_size).itos == Vocab.build(sentences, min_freq, max_size).itos


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    """``make demo > log`` gets no carriage returns; a terminal gets its bar."""
    pairs = read_parallel(DATA / "tiny.zh", DATA / "tiny.en").pairs
    cfg = DataConfig(zh_tokens="char", min_freq=1)
    build_cache(pairs, tmp_path / "log", cfg, progress=True)
    assert "tokenizing" not in capsys.readouterr().err  # pytest's stderr is no terminal
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    build_cache(pairs, tmp_path / "tty", cfg, progress=True)
    shown = terminal.getvalue()
    assert "tokenizing" in shown
    build_cache(pairs, tmp_path / "quiet", cfg, progress=False)  # no bar, even on a terminal
    assert terminal.getvalue() == shown


def test_cache_ids_equal_the_in_memory_pipeline(hsk_cfg, hsk_cache):
    result, data = hsk_cache
    numbered = list(stream_parallel(hsk_cfg.src_path, hsk_cfg.trg_path).numbered())
    part = {s: [p for n, p in numbered if split_of(n, hsk_cfg.seed, 0.1, 0.1) == s]
            for s in ("train", "valid", "test")}
    # today's pipeline on the same training pairs: its vocabularies, its over-long filter, its ids
    memory = prepare_data(replace(hsk_cfg, valid_frac=0.0, test_frac=0.0), Corpus(part["train"], "x"))
    assert data.src_vocab.itos == memory.src_vocab.itos
    assert data.trg_vocab.itos == memory.trg_vocab.itos
    assert result.manifest["too_long"] == memory.too_long > 0
    as_lists = lambda ds: sorted((ds[i][0].tolist(), ds[i][1].tolist()) for i in range(len(ds)))
    assert as_lists(data.train) == as_lists(memory.train)  # the in-memory split shuffles the order
    for split in ("valid", "test"):  # held-out pairs: all kept, in corpus order, raw text too
        expected = TranslationDataset(*tokenize_pairs(part[split]), memory.src_vocab, memory.trg_vocab)
        assert len(data.pairs(split)) == len(getattr(data, split)) == len(expected) > 50
        assert data.pairs(split) == part[split]
        for i in range(len(expected)):
            got, want = getattr(data, split)[i], expected[i]
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
            assert got[0].dtype == want[0].dtype == torch.int64
    assert result.manifest["id_dtype"] == "uint16" and result.manifest["dropped"]["empty pairs"] == 1


def test_a_cache_keeps_the_truecaser_of_the_in_memory_pipeline(hsk_cfg, hsk_cache, tmp_path):
    """A model trained on a cache restores "Mary" and "Beijing" as one trained in memory does
    (it used to capitalise the first letter only: the cache kept no truecaser)."""
    _, data = hsk_cache
    numbered = list(stream_parallel(hsk_cfg.src_path, hsk_cfg.trg_path).numbered())
    train = [p for n, p in numbered if split_of(n, hsk_cfg.seed, 0.1, 0.1) == "train"]
    memory = prepare_data(replace(hsk_cfg, valid_frac=0.0, test_frac=0.0), Corpus(train, "x"))
    assert data.truecaser is not None and len(data.truecaser) > 10
    assert data.truecaser.forms == memory.truecaser.forms
    cased = preprocess(replace(hsk_cfg, lowercase=False), tmp_path / "cased", workers=1,
                       progress=False)
    assert load_cache(cased.path).truecaser is None  # it learned the case itself


def test_char_tokens_match_too(tiny_data, tmp_path):
    cfg, memory = tiny_data  # every tiny pair in the training split, min_freq 1
    out = tmp_path / "c"
    build_cache(iter(read_parallel(cfg.src_path, cfg.trg_path).pairs), out, cfg, progress=False)
    data = load_cache(out)
    assert data.src_vocab.itos == memory.src_vocab.itos and len(data.train) == 20
    as_lists = lambda ds: sorted((ds[i][0].tolist(), ds[i][1].tolist()) for i in range(len(ds)))
    assert as_lists(data.train) == as_lists(memory.train)
    char_cfg = replace(cfg, zh_tokens="char")
    build_cache(iter(read_parallel(cfg.src_path, cfg.trg_path).pairs), tmp_path / "ch", char_cfg,
                progress=False)
    assert load_cache(tmp_path / "ch").src_vocab.itos == prepare_data(char_cfg).src_vocab.itos


@pytest.mark.parametrize("start_method", [
    "spawn",  # the only one on Windows, the default on macOS: workers import everything afresh
    pytest.param("fork", marks=pytest.mark.skipif(
        "fork" not in multiprocessing.get_all_start_methods(), reason="no fork here")),
])
def test_two_workers_write_the_same_bytes(hsk_cfg, hsk_cache, tmp_path, start_method):
    result, _ = hsk_cache
    out = tmp_path / start_method
    two = preprocess(hsk_cfg, out, workers=2, progress=False, start_method=start_method)
    assert two.manifest["workers"] == 2 and two.cache_hash == result.cache_hash
    for name in result.manifest["files"]:
        assert (out / name).read_bytes() == (result.path / name).read_bytes(), name


# ---------------------------------------------------------------- streaming, idempotence, refusals


def test_a_generator_is_read_one_chunk_at_a_time(monkeypatch, tmp_path):
    pairs = read_parallel(DATA / "tiny.zh", DATA / "tiny.en").pairs
    consumed = 0

    def corpus():
        nonlocal consumed
        for i in range(2000):
            consumed += 1
            yield pairs[i % len(pairs)]

    seen = []
    tokenize = cache_mod._tokenize_chunk
    monkeypatch.setattr(cache_mod, "_tokenize_chunk",
                        lambda task: (seen.append(consumed), tokenize(task))[1])
    cfg = DataConfig(zh_tokens="char", min_freq=1)
    result = build_cache(corpus(), tmp_path / "g", cfg, chunk_size=100, progress=False)
    # each chunk is tokenized as soon as it is read: never more than one chunk ahead
    assert seen == [100 * (i + 1) for i in range(20)]
    assert sum(result.manifest["splits"].values()) == 2000
    assert result.manifest["inputs"][0]["role"] == "stream"


def test_same_input_reuses_the_cache_and_force_rebuilds_it(hsk_cfg, hsk_cache, tmp_path):
    result, _ = hsk_cache
    out = tmp_path / "again"
    preprocess(hsk_cfg, out, workers=1, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = preprocess(hsk_cfg, out, workers=1, progress=False)
    assert again.reused and "cache up to date" in again.summary()
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert again.cache_hash == result.cache_hash  # same content elsewhere: same hash
    forced = preprocess(hsk_cfg, out, workers=1, force=True, progress=False)
    assert not forced.reused and (out / "train.src.npy").read_bytes() == (result.path / "train.src.npy").read_bytes()
    assert leftovers(tmp_path) == []


def test_other_inputs_or_settings_are_refused_unless_forced(hsk_cfg, tmp_path):
    out = tmp_path / "c"
    preprocess(DataConfig(**TINY, min_freq=1), out, workers=1, progress=False)
    with pytest.raises(CacheError, match=r"holds a cache of other settings \(min_freq=1\).*--force"):
        preprocess(DataConfig(**TINY, min_freq=2), out, workers=1, progress=False)
    with pytest.raises(CacheError, match=r"holds a cache of other inputs \(.*tiny.zh"):
        preprocess(hsk_cfg, out, workers=1, progress=False)
    assert read_manifest(out)["settings"]["min_freq"] == 1  # untouched
    forced = preprocess(DataConfig(**TINY, min_freq=2), out, workers=1, force=True, progress=False)
    assert read_manifest(out)["cache_hash"] == forced.cache_hash
    # a folder that is not a cache is never replaced, --force or not
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(CacheError, match="not a cache folder"):
        preprocess(DataConfig(**TINY), notes, workers=1, force=True, progress=False)
    assert (notes / "todo.txt").read_text() == "mine"


def test_a_damaged_cache_is_named_and_rebuilt(tmp_path):
    out = tmp_path / "c"
    cfg = DataConfig(**TINY, min_freq=1)
    preprocess(cfg, out, workers=1, progress=False)
    (out / "train.trg.npy").unlink()
    with pytest.raises(CacheError, match=r"damaged cache \(train.trg.npy is missing\)"):
        load_cache(out)
    assert not preprocess(cfg, out, workers=1, progress=False).reused
    load_cache(out)
    with pytest.raises(CacheError, match="cache folder not found"):
        load_cache(tmp_path / "nowhere")


# ---------------------------------------------------------------- failures leave nothing complete-looking


def test_a_full_disk_leaves_no_cache_and_keeps_the_old_one(monkeypatch, tmp_path):
    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod, "_remap_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        preprocess(DataConfig(**TINY, min_freq=1), tmp_path / "new", workers=1, progress=False)
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []
    monkeypatch.undo()
    old = preprocess(DataConfig(**TINY, min_freq=1), tmp_path / "old", workers=1, progress=False)
    monkeypatch.setattr(cache_mod, "_remap_file", disk_full)
    with pytest.raises(OSError):
        preprocess(DataConfig(**TINY, min_freq=2), tmp_path / "old", workers=1, force=True, progress=False)
    assert load_cache(tmp_path / "old").cache_hash == old.cache_hash
    assert leftovers(tmp_path) == []


def test_ctrl_c_and_bad_lines_leave_nothing(tmp_path):
    def interrupted():
        yield from [("你好。", "Hello.")] * 150
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cache(interrupted(), tmp_path / "k", DataConfig(zh_tokens="char"), chunk_size=100,
                    progress=False)
    zh = write(tmp_path / "b.zh", "一\n二\n".encode() + b"\xff bad\n")
    en = write(tmp_path / "b.en", b"one\ntwo\nthree\n")
    with pytest.raises(CorpusError, match=r"b\.zh:3: not valid UTF-8"):
        preprocess(DataConfig(source="parallel", src_path=str(zh), trg_path=str(en)),
                   tmp_path / "u", workers=1, progress=False)
    good = write(tmp_path / "g.zh", "一\n二\n三\n".encode())
    short = write(tmp_path / "s.en", b"one\n")
    with pytest.raises(CorpusError, match=r"g\.zh has 3 lines but .*s\.en has 1"):
        preprocess(DataConfig(source="parallel", src_path=str(good), trg_path=str(short)),
                   tmp_path / "m", workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.en", "b.zh", "g.zh", "s.en"]


# ---------------------------------------------------------------- the dataset and the batches


def test_cached_dataset_pickles_its_file_names_only(hsk_cache):
    _, data = hsk_cache
    assert isinstance(data.train, CachedDataset)
    copy = pickle.loads(pickle.dumps(data.train))
    assert len(pickle.dumps(data.train)) < 2000
    for i in (0, len(copy) - 1):
        assert all(torch.equal(a, b) for a, b in zip(copy[i], data.train[i]))
    with pytest.raises(IndexError):
        data.train[len(data.train)]
    src_lens, trg_lens = length_arrays(data.train)
    assert src_lens[0] == len(data.train[0][0]) and trg_lens[-1] == len(data.train[-1][1])
    assert data.train.n_target_tokens() == int((trg_lens - 1).sum())


def test_token_budget_batches_cover_everything_once_within_budget():
    rng = np.random.default_rng(0)
    src, trg = rng.integers(3, 40, 1000), rng.integers(3, 50, 1000)
    sampler = TokenBucketSampler(src, trg, max_tokens=300, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    for b in batches:
        cost = len(b) * max(src[b].max(), trg[b].max())
        assert cost <= 300 or len(b) == 1
    assert len(sampler) == len(batches) and list(sampler) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    by_count = TokenBucketSampler(src, trg, batch_size=64)
    assert len(list(by_count)) == len(by_count) == 16 and max(map(len, by_count)) == 64
    with pytest.raises(ValueError, match="exactly one"):
        TokenBucketSampler(src, trg, batch_size=8, max_tokens=100)


def test_make_loader_uses_token_budgets_for_both_datasets(tiny_data, hsk_cache):
    _, memory = tiny_data
    loader = make_loader(memory.train, 8, max_tokens=40)
    assert all(b.src.numel() <= 40 or b.batch_size == 1 for b in loader)
    with pytest.raises(ValueError, match="bucket=True"):
        make_loader(memory.train, 8, bucket=False, max_tokens=40)
    _, data = hsk_cache
    plain = make_loader(data.valid, 32, bucket=False, shuffle=False)
    first = next(iter(plain))
    assert first.src.shape[1] == 32 and torch.equal(first.src_lens[:1], torch.tensor([len(data.valid[0][0])]))


def test_training_from_a_cache_records_it_in_the_checkpoint(tiny_cache, tmp_path):
    data = load_cache(tiny_cache, max_tokens=60, num_workers=1)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, device="cpu",
                      checkpoint_path=str(tmp_path / "m.pt"))
    translator, result = train_translator(data, data.data_config(), TINY_MODEL, cfg, progress=False)
    assert len(result.history) == 2 and np.isfinite(result.best_valid_loss)
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]
    saved = load_checkpoint(tmp_path / "m.pt")["info"].data_cfg
    assert saved.cache_hash == data.cache_hash and saved.data_dir == str(tiny_cache)
    assert saved.min_freq == 1 and saved.valid_frac == 0.2
    assert translator.translate("我喜欢学习。")  # the checkpoint's own tokenizer settings


# ---------------------------------------------------------------- the command line


def test_cli_preprocess_train_evaluate(tmp_path, capsys):
    out, ckpt = tmp_path / "cache", tmp_path / "m.pt"
    flags = ["--src", str(DATA / "tiny.zh"), "--trg", str(DATA / "tiny.en"), "--out", str(out),
             "--min-freq", "1", "--valid-frac", "0.2", "--test-frac", "0.2", "--workers", "1", "--quiet"]
    assert main(["preprocess", *flags]) == 0
    assert "cache written" in capsys.readouterr().out
    assert main(["preprocess", *flags]) == 0
    assert "cache up to date" in capsys.readouterr().out
    assert main(["train", "--data-dir", str(out), "--epochs", "1", "--emb-dim", "8", "--hid-dim", "8",
                 "--n-layers", "1", "--max-tokens", "64", "--quiet", "--out", str(ckpt)]) == 0
    assert "test BLEU" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(ckpt), "--examples", "0"]) == 0  # its own cache
    shown = capsys.readouterr()
    assert "perplexity" in shown.out and "BLEU" in shown.out and "warning" not in shown.err
    other = tmp_path / "other"
    assert main(["preprocess", "--tsv", str(DATA / "tiny.tsv"), "--out", str(other), "--workers", "1",
                 "--quiet", "--test-frac", "0.5"]) == 0
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data-dir", str(other), "--examples", "0"]) == 0
    assert "trained on another cache" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["preprocess", "--tsv", str(DATA / "tiny.tsv"), "--out", "{cache}"], "holds a cache of other inputs"),
    (["train", "--data-dir", "{cache}", "--tsv", str(DATA / "tiny.tsv")], "--data-dir replaces --tsv"),
    (["train", "--max-tokens", "100"], "give --data-dir too"),
    (["evaluate", "--checkpoint", "nowhere.pt", "--data-dir", "{cache}"], "checkpoint not found"),
    (["train", "--data-dir", "{missing}"], "cache folder not found"),
    (["preprocess", "--src", str(DATA / "tiny.zh"), "--out", "x"], "--src and --trg must be given together"),
])
def test_cli_errors_are_one_line(tiny_cache, tmp_path, capsys, args, message):
    args = [a.format(cache=tiny_cache, missing=tmp_path / "missing") for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_cli_ctrl_c_is_a_clean_error(monkeypatch, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod, "preprocess", interrupted)
    assert main(["preprocess", "--data", "hsk", "--out", str(tmp_path / "c")]) == 2
    assert "interrupted: nothing was written" in capsys.readouterr().err


def test_a_cache_pads_whole_batches_with_numpy(hsk_cache):
    _, data = hsk_cache
    indices = [5, 0, len(data.train) - 1, 17, -2]
    padded = data.train.__getitems__(indices)
    one_by_one = collate([data.train[i] for i in indices])
    for name in ("src", "src_lens", "trg", "n_tokens"):
        a, b = getattr(padded, name), getattr(one_by_one, name)
        assert (torch.equal(a, b) if torch.is_tensor(a) else a == b), name
    assert padded.src.dtype == torch.int64 and padded.src.is_contiguous()
    with pytest.raises(IndexError):
        data.train.__getitems__([len(data.train)])
