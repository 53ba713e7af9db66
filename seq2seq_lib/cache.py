"""Preprocess once: a corpus streamed through tokenizer processes into a folder of memory-mapped
token ids, both vocabularies and a manifest, which training then reads lazily.

``python -m seq2seq_lib preprocess --src F --trg F --out DIR`` calls :func:`preprocess`;
``train --data-dir DIR`` and the Python API read the folder with :func:`load_cache`.

How it works, in two passes that keep memory flat however large the corpus:

1. The input is read one line at a time (``data.stream_corpus``); :func:`~seq2seq_lib.data.split_of`
   puts each pair in train / valid / test from its line number alone; chunks of pairs go to worker
   processes that tokenize them (jieba or characters, spaCy) and return compact id arrays with
   per-chunk token lists. The main process gives every token type a provisional number, appends
   the ids to scratch files and counts the training tokens.
2. The vocabularies are chosen from those counts with :meth:`Vocab.build`'s rule (``min_freq``,
   ``max_size``, ties broken alphabetically), and the scratch ids are mapped, block by block, to
   the final ids.

Everything is written into a hidden folder beside ``--out`` and renamed into place at the end,
``manifest.json`` last, so an interrupted or failed run never leaves a folder that looks complete.

Folder layout (format version 2)::

    manifest.json           inputs (size, sha256), settings, split sizes, files, cache_hash
    src_vocab.json          the vocabularies, as Vocab.save writes them
    trg_vocab.json
    truecase.json           lower-case word -> its usual spelling (lowercase caches only)
    {split}.src.npy         ids of all sentences of the split, one flat uint16 (or int32) array
    {split}.src_offsets.npy int64 [n + 1]: sentence i is src[offsets[i]:offsets[i + 1]]
    {split}.src_lens.npy    int32 [n]: tokens per sentence, <sos>/<eos> not included
    {split}.trg*.npy        the same for the English side
    valid.zh valid.en       the raw held-out text (one sentence a line), for BLEU
    test.zh test.en
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .batching import CachedDataset, cache_file
from .checkpoint import library_version
from .config import DataConfig, from_dict, to_dict
from .data import (
    CorpusError,
    CorpusStream,
    Pair,
    held_out_fractions,
    read_parallel,
    split_of,
    stream_corpus,
)
from .pipeline import Subwords, train_subwords
from .script import pairs_in_script, to_script
from .subword import SubwordVocab
from .tokenize import load_user_dict, target_tokens, tokenize_en, tokenize_zh, zh_mode
from .truecase import TrueCaser, count_spellings
from .vocab import Vocab

FORMAT_VERSION = 2  # raise it whenever the files or the tokenization rules change (2: truecase.json)
TRUECASE_FILE = "truecase.json"
SPLITS = ("train", "valid", "test")
SIDES = ("src", "trg")
HELD_OUT = ("valid", "test")  # the splits whose raw text is kept
CHUNK_SIZE = 1000  # pairs per task sent to a worker process
BLOCK = 1 << 20  # ids mapped per step in the second pass
# settings that name where the input was, not what it holds: recorded, not hashed
_PATH_SETTINGS = ("src_path", "trg_path", "tsv_path", "user_dict", "data_dir", "cache_hash", "limit")


class CacheError(ValueError):
    """A cache folder that cannot be written or read as asked; the message names the folder."""


# ---------------------------------------------------------------- identity of a cache


def file_digest(path: str | Path) -> dict[str, Any]:
    """Size, SHA-256 and line count of a file, read in 1 MiB blocks."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    sha, lines, size, last = hashlib.sha256(), 0, 0, b"\n"
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            sha.update(block)
            lines += block.count(b"\n")
            size += len(block)
            last = block[-1:]
    lines += last != b"\n"  # a last line without its newline
    return {"path": str(path), "size": size, "sha256": sha.hexdigest(), "lines": lines}


def describe_inputs(cfg: DataConfig) -> list[dict[str, Any]]:
    """What the cache is made from: each input file's size and SHA-256 (for the HSK corpus, the
    package version and a hash of its sentences), and the jieba user dictionary if any."""
    stream_corpus(cfg)  # the loaders' own message for a missing path or an unknown source
    if cfg.source == "hsk":
        from hsk_sentences_audio import load_sentences

        items = load_sentences()
        text = json.dumps([(it["chinese"], it["translation"]["en"]) for it in items], ensure_ascii=False)
        inputs = [{"role": "hsk", "package": "hsk-sentences-audio",
                   "version": _package_version("hsk-sentences-audio"), "size": len(items),
                   "sha256": hashlib.sha256(text.encode()).hexdigest(), "lines": len(items)}]
    elif cfg.source == "parallel":
        inputs = [{"role": "src", **file_digest(cfg.src_path)}, {"role": "trg", **file_digest(cfg.trg_path)}]
    else:
        inputs = [{"role": "tsv", **file_digest(cfg.tsv_path)}]
    if cfg.user_dict:
        if not Path(cfg.user_dict).is_file():
            raise FileNotFoundError(f"{cfg.user_dict}: user dictionary not found")
        inputs.append({"role": "user_dict", **file_digest(cfg.user_dict)})
    return inputs


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def cache_settings(cfg: DataConfig) -> dict[str, Any]:
    """The :class:`DataConfig` fields a cache is built with (``limit`` is not supported)."""
    if cfg.limit is not None:
        raise ValueError("a cache holds the whole corpus: limit must be None (sample the files instead)")
    return {k: v for k, v in to_dict(cfg).items() if k not in ("data_dir", "cache_hash", "limit")}


def cache_hash(inputs: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """SHA-256 of what decides a cache's content: the format version, the inputs' sizes and
    hashes, the settings (paths excepted: the same files elsewhere give the same cache) and the
    tokenizer versions."""
    identity = {
        "format_version": FORMAT_VERSION,
        "inputs": [{k: d[k] for k in ("role", "size", "sha256")} for d in inputs],
        "settings": _subword_identity({k: v for k, v in settings.items() if k not in _PATH_SETTINGS}),
        "tokenizers": _tokenizer_versions(settings),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _subword_identity(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings without those that change nothing (no spm side, or the Chinese kept as
    written: the hash of such a cache stays what it was before those settings existed);
    ``tokens`` is already in ``zh_tokens`` and ``en_tokens``."""
    spm = "spm" in (settings.get("zh_tokens"), settings.get("en_tokens"))
    drop = {"tokens"} | ({"en_tokens"} if settings.get("en_tokens", "word") == "word" else set())
    drop |= set() if spm else {"spm_vocab"}
    drop |= {"zh_script"} if settings.get("zh_script", "keep") == "keep" else set()
    return {k: v for k, v in settings.items() if k not in drop}


def _tokenizer_versions(settings: dict[str, Any]) -> dict[str, str]:
    """The versions of the tokenizers a cache is built with (SentencePiece for spm sides)."""
    names = ["jieba", "spacy"]
    if "spm" in (settings.get("zh_tokens"), settings.get("en_tokens")):
        names.append("sentencepiece")
    if settings.get("zh_script", "keep") != "keep":
        names.append("opencc-python-reimplemented")
    return {name: _package_version(name) for name in names}


# ---------------------------------------------------------------- the worker's side


def _init_worker(user_dict: str | None) -> None:
    """Run once in every worker process (also under the ``spawn`` start method)."""
    if user_dict:
        load_user_dict(user_dict)


def _load_tokenizers(mode: str, user_dict: str | None) -> None:
    """Load jieba (unless Chinese is split into characters), the user dictionary and spaCy now
    (about 1.5 s), so that processes forked from this one inherit them instead of each loading
    them again."""
    _init_worker(user_dict)
    tokenize_zh("预热", mode, user_dict)  # type: ignore[arg-type]
    tokenize_en("warm up")


def _encode_locally(sentences: list[list[str]], train: np.ndarray
                    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Token lists to (types, local ids [tokens], lengths [sentences], training counts [types])."""
    index: dict[str, int] = {}
    ids = np.fromiter((index.setdefault(tok, len(index)) for sent in sentences for tok in sent),
                      dtype=np.int32)
    lens = np.fromiter((len(sent) for sent in sentences), dtype=np.int32, count=len(sentences))
    in_train = np.repeat(train, lens)
    counts = np.bincount(ids[in_train], minlength=len(index)).astype(np.int64)
    return list(index), ids, lens, counts


def _tokenize_chunk(task: tuple[bytes, list[str], list[str], bool, str, int, str | None, Subwords,
                                str]) -> dict[str, Any]:
    """Tokenize one chunk of pairs (runs in a worker process: a top-level function, plain data).

    :param task: (split codes, Chinese sentences, English sentences, lowercase, jieba mode,
        max_len, user dictionary or None, SentencePiece vocabularies, Chinese script). The
        Chinese is put into the script first; training pairs with a side longer than
        ``max_len`` tokens are left out, as :func:`~seq2seq_lib.pipeline.prepare_data` does.
    """
    codes, zh_list, en_list, lowercase, mode, max_len, user_dict, (src_spm, trg_spm), script = task
    zh_tokens, en_tokens, kept = [], [], bytearray()
    too_long = 0
    cased_train = []  # the training targets with their case: the truecaser counts them
    for code, zh, en in zip(codes, zh_list, en_list):
        zh = to_script(zh, script)
        zt = (src_spm.tokenize(zh) if src_spm is not None
              else tokenize_zh(zh, mode, user_dict))  # type: ignore[arg-type]
        if code == 0 and lowercase:  # as prepare_data: the truecaser counts the cased words
            cased = tokenize_en(en, lowercase=False)
            cased_train.append(cased)
            et = [t.lower() for t in cased] if trg_spm is None else target_tokens(en, True, trg_spm)
        else:
            et = target_tokens(en, lowercase, trg_spm)
        if code == 0 and (len(zt) > max_len or len(et) > max_len):
            too_long += 1
            continue
        zh_tokens.append(zt)
        en_tokens.append(et)
        kept.append(code)
    splits = np.frombuffer(bytes(kept), dtype=np.uint8)
    train = splits == 0
    return {"splits": splits, "too_long": too_long, "pairs": len(codes), "spellings": count_spellings(cased_train),
            "src": _encode_locally(zh_tokens, train), "trg": _encode_locally(en_tokens, train)}


def _tokenized_chunks(tasks: Iterator[tuple], workers: int, mode: str, user_dict: str | None,
                      start_method: str | None) -> Iterator[dict[str, Any]]:
    """Results of :func:`_tokenize_chunk`, in input order, with at most ``2 * workers`` chunks in
    flight (``Pool.imap`` would read the whole input ahead)."""
    if workers <= 1:
        _init_worker(user_dict)
        for task in tasks:
            yield _tokenize_chunk(task)
        return
    context = multiprocessing.get_context(start_method)
    forked = context.get_start_method() == "fork"
    if forked:  # load once here; the workers inherit the loaded tokenizers
        _load_tokenizers(mode, user_dict)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(None if forked else user_dict,))
    pending: deque[Future] = deque()
    try:
        for task in tasks:
            pending.append(pool.submit(_tokenize_chunk, task))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool as exc:
        raise CacheError(f"a tokenizer process ended abruptly ({exc}); out of memory? "
                         "try fewer workers") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- the main process's side


class _TypeTable:
    """Token types in order of first appearance (provisional ids) and their training counts."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.counts = np.zeros(1024, dtype=np.int64)

    def merge(self, types: list[str], local_ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Add one chunk's types and counts; return its ids as provisional ids."""
        to_global = np.fromiter((self.index.setdefault(t, len(self.index)) for t in types),
                                dtype=np.int32, count=len(types))
        if len(self.index) > len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros(len(self.index), np.int64)])
        self.counts[to_global] += counts  # a chunk lists each type once
        return to_global[local_ids]

    def vocab(self, min_freq: int, max_size: int | None) -> Vocab:
        """:meth:`Vocab.from_counts` of the table, given only the types that can be chosen:
        seen ``min_freq`` times, and (with ``max_size``) at least as often as the
        ``max_size``-th most frequent one, ties included; so its dictionary holds about
        ``max_size`` types, not every type of the corpus."""
        counts = self.counts[: len(self.index)]
        floor = max(min_freq, 1)
        if max_size is not None and len(counts) > max_size:
            # the max_size-th largest count: fewer than max_size - 4 ordinary types rank above
            # it, so no type the rule keeps is below it (the specials are at most 4 of them)
            floor = max(floor, int(np.partition(counts, len(counts) - max_size)[-max_size]))
        chosen = np.flatnonzero(counts >= floor)
        types = list(self.index)
        return Vocab.from_counts({types[i]: int(counts[i]) for i in chosen.tolist()}, min_freq,
                                 max_size)


@dataclass
class PreprocessResult:
    """What :func:`preprocess` did: the folder, its hash, and whether it was reused as it was."""

    path: Path
    cache_hash: str
    reused: bool
    manifest: dict[str, Any]
    seconds: float = 0.0

    @property
    def pairs_per_s(self) -> float:
        n = sum(self.manifest["splits"].values()) + self.manifest["too_long"]
        return n / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """A few lines: splits, vocabularies, the folder, and the speed (or 'up to date')."""
        m = self.manifest
        s = m["splits"]
        size = sum(m["files"].values())
        lines = [f"{m['corpus']}",
                 f"split: {s['train']} train / {s['valid']} valid / {s['test']} test"
                 f" ({m['too_long']} over-long training pairs left out)",
                 f"vocabulary: {m['vocab']['src']} Chinese / {m['vocab']['trg']} English tokens"]
        where = f"{self.path} (hash {self.cache_hash[:12]}, {size / 1e6:.1f} MB)"
        if self.reused:
            lines.append(f"cache up to date: {where}; nothing to do")
        else:
            lines.append(f"cache written: {where} in {self.seconds:.1f} s "
                         f"({self.pairs_per_s:,.0f} pairs/s, {m['workers']} worker(s))")
        return "\n".join(lines)


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none (not a cache, or not finished)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _replaceable(out: Path) -> dict[str, Any] | None:
    """``out``'s manifest when it is a cache, None when it is absent or an empty folder; any
    other file or folder is never replaced (``--force`` included)."""
    manifest = read_manifest(out)
    if manifest is not None and "cache_hash" in manifest:
        return manifest
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CacheError(f"{out} exists and is not a cache folder (no manifest.json): "
                         "choose a new or empty folder for --out")
    return None


def _damage(folder: Path, manifest: dict[str, Any]) -> str | None:
    """What is wrong with a cache folder that has a manifest, or None when it is whole."""
    if manifest.get("format_version") != FORMAT_VERSION:
        return f"format version {manifest.get('format_version')}, this library reads {FORMAT_VERSION}"
    for name, size in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {size}"
    return None


def preprocess(cfg: DataConfig, out: str | Path, workers: int | None = None, force: bool = False,
               progress: bool = True, start_method: str | None = None) -> PreprocessResult:
    """Tokenize the corpus ``cfg`` names into a cache folder ``out`` (see the module docstring).

    Running it again on the same input with the same settings reuses the folder
    (``result.reused``). A folder built from other inputs or settings is refused unless ``force``;
    a non-empty folder that is not a cache is always refused.

    :param workers: tokenizer processes (default: the CPU count; 1 tokenizes in this process).
    :param start_method: ``multiprocessing`` start method for the workers (default: the
        platform's: ``fork`` on Linux, ``spawn`` on macOS and Windows). The workers run a
        top-level function on plain data, so every start method works; under ``spawn`` the
        calling script must be a file (or a notebook), not standard input.
    """
    out = Path(out)
    settings = cache_settings(cfg)
    inputs = describe_inputs(cfg)
    digest = cache_hash(inputs, settings)
    manifest = _replaceable(out)
    if manifest is not None:
        damage = _damage(out, manifest)
        if manifest.get("cache_hash") == digest and damage is None and not force:
            return PreprocessResult(out, digest, True, manifest)
        if manifest.get("cache_hash") != digest and not force:
            raise CacheError(f"{out} holds a cache of {_differs(manifest, inputs, settings)}: "
                             "use --force (force=True) to replace it, or another --out")
    total = inputs[0].get("lines")
    workers = workers or os.cpu_count() or 1
    if total:
        workers = max(1, min(workers, -(-total // CHUNK_SIZE)))  # no more workers than chunks
    return build_cache(stream_corpus(cfg), out, cfg, inputs=inputs, workers=workers,
                       progress=progress, total=total, start_method=start_method)


def _differs(manifest: dict[str, Any], inputs: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """'other inputs (…)' or 'other settings (…)': what makes an old cache another one."""
    old = {(d.get("role"), d.get("sha256")) for d in manifest.get("inputs", [])}
    if old != {(d["role"], d["sha256"]) for d in inputs}:
        names = ", ".join(d.get("path", d.get("package", "?")) for d in manifest.get("inputs", []))
        return f"other inputs ({names or 'unknown'})"
    changed = [f"{k}={manifest.get('settings', {}).get(k)!r}" for k, v in settings.items()
               if k not in _PATH_SETTINGS and manifest.get("settings", {}).get(k) != v]
    if changed:
        return f"other settings ({', '.join(changed)})"
    return "another format or tokenizer version"


def build_cache(pairs: CorpusStream | Iterable[Pair], out: str | Path, cfg: DataConfig,
                inputs: list[dict[str, Any]] | None = None, workers: int = 1,
                chunk_size: int = CHUNK_SIZE, progress: bool = True, total: int | None = None,
                start_method: str | None = None) -> PreprocessResult:
    """Write a cache of ``pairs`` to ``out`` with ``cfg``'s settings, replacing what is there.

    :param pairs: a :class:`CorpusStream` (its line numbers choose the splits) or any iterable of
        (zh, en) pairs, e.g. a generator (numbered 1, 2, ... in order); it is read once, a chunk
        at a time.
    :param inputs: what :func:`describe_inputs` says about the input; without it the manifest
        records a SHA-256 of the pairs as they were read.
    :param total: the expected number of records, for the progress bar and for the caps
        ``cfg.valid_max`` / ``cfg.test_max`` (without it the fractions apply uncapped).
    """
    out = Path(out)
    _replaceable(out)
    settings = cache_settings(cfg)
    mode = "char" if cfg.zh_tokens == "spm" else zh_mode(cfg.zh_tokens)  # (spm: not used)
    # the fractions, checked before any work and capped by valid_max / test_max of ``total``
    fractions = held_out_fractions(total, cfg.valid_frac, cfg.test_frac, cfg.valid_max,
                                   cfg.test_max)
    Vocab.build([], cfg.min_freq, cfg.max_size)  # and the vocabulary settings
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    started = time.perf_counter()
    try:
        records = pairs.numbered() if isinstance(pairs, CorpusStream) else enumerate(pairs, start=1)
        subwords, records = _subwords(records, pairs, cfg, fractions)
        stream_sha = hashlib.sha256() if inputs is None else None
        tasks = _tasks(records, cfg, fractions, mode, chunk_size, tmp, stream_sha, subwords)
        chunks = _tokenized_chunks(tasks, workers, mode, cfg.user_dict, start_method)
        try:
            stats = _first_pass(chunks, tmp, progress, total)
        finally:  # stop the workers and close the text files now, also on an error
            chunks.close()
            tasks.close()
        if inputs is None:
            inputs = [{"role": "stream", "size": stats["pairs"], "sha256": stream_sha.hexdigest()}]
        manifest = _second_pass(tmp, stats, cfg, subwords)
        manifest.update({
            "format_version": FORMAT_VERSION,
            "cache_hash": cache_hash(inputs, settings),
            "library_version": library_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "corpus": pairs.summary() if isinstance(pairs, CorpusStream) else f"{stats['pairs']} pairs",
            "dropped": dict(pairs.dropped) if isinstance(pairs, CorpusStream) else {},
            "inputs": inputs,
            "settings": settings,
            "tokenizers": _tokenizer_versions(settings),
            "workers": workers,
            "held_out_fractions": {"valid": fractions[0], "test": fractions[1]},
        })
        manifest["files"] = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        _write_json(tmp / "manifest.json", manifest)  # last: a folder without it is not a cache
        _move_into_place(tmp, out)
    except BaseException:  # Ctrl-C, a full disk, a bad line: leave nothing that looks complete
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PreprocessResult(out, manifest["cache_hash"], False, manifest,
                            time.perf_counter() - started)


def _subwords(records: Iterable[tuple[int, Pair]], pairs: Any, cfg: DataConfig,
              fractions: tuple[float, float]) -> tuple[Subwords, Iterable[tuple[int, Pair]]]:
    """The SentencePiece vocabularies of the spm sides, trained on the training split (by
    ``fractions``) in a pass of its own before the tokenizing pass (a stream is read again;
    other pairs are kept in a list), and the records for that pass."""
    if not cfg.uses_spm:
        return (None, None), records
    if not isinstance(pairs, CorpusStream):
        records = list(records)
    train = pairs_in_script([pair for number, pair in records
                             if split_of(number, cfg.seed, *fractions) == "train"], cfg.zh_script)
    again = pairs.numbered() if isinstance(pairs, CorpusStream) else records
    return train_subwords(cfg, train), again


def _tasks(records: Iterable[tuple[int, Pair]], cfg: DataConfig, fractions: tuple[float, float],
           mode: str, chunk_size: int, tmp: Path, stream_sha: Any,
           subwords: Subwords = (None, None)) -> Iterator[tuple]:
    """Chunks of pairs for :func:`_tokenize_chunk`, with the split decided here (by
    ``fractions``: validation, test); the raw text of the held-out pairs is written as it goes
    by."""
    codes = {"train": 0, "valid": 1, "test": 2}
    raw = {(split, lang): (tmp / f"{split}.{lang}").open("w", encoding="utf-8", newline="\n")
           for split in HELD_OUT for lang in ("zh", "en")}
    try:
        chunk_codes, zh_list, en_list = bytearray(), [], []
        for number, (zh, en) in records:
            split = split_of(number, cfg.seed, *fractions)
            if stream_sha is not None:
                stream_sha.update(f"{zh}\t{en}\n".encode())
            if split != "train":
                raw[split, "zh"].write(zh + "\n")
                raw[split, "en"].write(en + "\n")
            chunk_codes.append(codes[split])
            zh_list.append(zh)
            en_list.append(en)
            if len(zh_list) == chunk_size:
                yield (bytes(chunk_codes), zh_list, en_list, cfg.lowercase, mode, cfg.max_len,
                       cfg.user_dict, subwords, cfg.zh_script)
                chunk_codes, zh_list, en_list = bytearray(), [], []
        if zh_list:
            yield (bytes(chunk_codes), zh_list, en_list, cfg.lowercase, mode, cfg.max_len,
                       cfg.user_dict, subwords, cfg.zh_script)
    finally:
        for fh in raw.values():
            fh.close()


def _first_pass(results: Iterator[dict[str, Any]], tmp: Path, progress: bool,
                total: int | None) -> dict[str, Any]:
    """Append every chunk's provisional ids and lengths to scratch files, per split and side."""
    work = tmp / "scratch"
    work.mkdir()
    tables = {side: _TypeTable() for side in SIDES}
    files = {(split, side, kind): (work / f"{split}.{side}.{kind}").open("wb")
             for split in SPLITS for side in SIDES for kind in ("ids", "lens")}
    counts = {"pairs": 0, "too_long": 0}
    spellings: Counter[str] = Counter()
    # a bar on a terminal (and in a notebook) only: a redirected log gets no carriage returns
    bar = tqdm(total=total, unit=" pairs", unit_scale=True, desc="tokenizing",
               disable=None if progress else True, smoothing=0.1)
    try:
        for result in results:
            splits = result["splits"]
            for side in SIDES:
                types, local_ids, lens, train_counts = result[side]
                ids = tables[side].merge(types, local_ids, train_counts)
                token_split = np.repeat(splits, lens)
                for code, split in enumerate(SPLITS):
                    files[split, side, "ids"].write(ids[token_split == code].astype(np.int32).tobytes())
                    files[split, side, "lens"].write(lens[splits == code].astype(np.int32).tobytes())
            counts["pairs"] += result["pairs"]
            counts["too_long"] += result["too_long"]
            spellings.update(result["spellings"])
            bar.update(result["pairs"])
        bar.total = bar.n  # records the loaders dropped never reach the bar
        bar.refresh()
    finally:
        bar.close()
        for fh in files.values():
            fh.close()
    return {**counts, "tables": tables, "spellings": spellings}


def _second_pass(tmp: Path, stats: dict[str, Any], cfg: DataConfig,
                 subwords: Subwords = (None, None)) -> dict[str, Any]:
    """Choose the vocabularies (a SentencePiece side's are its pieces), write them, and map the
    scratch ids to final ids."""
    work = tmp / "scratch"
    vocabs = {side: sub if sub is not None else stats["tables"][side].vocab(cfg.min_freq, cfg.max_size)
              for side, sub in zip(SIDES, subwords)}
    dtype = np.uint16 if max(len(v) for v in vocabs.values()) <= 1 << 16 else np.int32
    n_pairs, n_tokens = {}, {}
    for side in SIDES:
        vocab = vocabs[side]
        vocab.save(tmp / f"{side}_vocab.json")
        remap = np.fromiter((vocab.stoi.get(t, Vocab.unk_id) for t in stats["tables"][side].index),
                            dtype=np.int64)
        for split in SPLITS:
            n_pairs[split], n_tokens.setdefault(split, {})[side] = _offsets_file(
                work / f"{split}.{side}.lens", tmp / cache_file(split, f"{side}_lens"),
                tmp / cache_file(split, f"{side}_offsets"))
            _remap_file(work / f"{split}.{side}.ids", tmp / cache_file(split, side), remap, dtype)
    shutil.rmtree(work)
    if cfg.lowercase:  # the usual spellings of the training targets, as prepare_data learns them
        _write_json(tmp / TRUECASE_FILE, TrueCaser.from_counts(stats["spellings"]).to_dict())
    return {"splits": n_pairs, "tokens": n_tokens, "too_long": stats["too_long"],
            "vocab": {side: len(vocabs[side]) for side in SIDES}, "id_dtype": np.dtype(dtype).name,
            **_save_subwords(tmp, subwords)}


def _save_subwords(tmp: Path, subwords: Subwords) -> dict[str, Any]:
    """Write each SentencePiece model as ``{side}_spm.model``; the manifest's ``spm`` entry
    (nothing without spm) names their SHA-256."""
    spm = {}
    for side, sub in zip(SIDES, subwords):
        if sub is not None:
            (tmp / f"{side}_spm.model").write_bytes(sub.model)
            spm[side] = hashlib.sha256(sub.model).hexdigest()
    return {"spm": spm} if spm else {}


def _npy_header(fh: Any, dtype: Any, n: int) -> None:
    """The header ``np.save`` writes for a flat array of ``n`` values of ``dtype``."""
    np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                              "fortran_order": False, "shape": (n,)})


def _blocks(fh: Any) -> Iterator[np.ndarray]:
    """The int32 values of an open scratch file, :data:`BLOCK` at a time."""
    while (block := np.fromfile(fh, dtype=np.int32, count=BLOCK)).size:
        yield block


def _offsets_file(src: Path, lens_dst: Path, offsets_dst: Path) -> tuple[int, int]:
    """Scratch int32 lengths to ``.npy`` lengths and offsets, a block at a time (neither is
    ever whole in memory); return (sentences, tokens)."""
    n = src.stat().st_size // 4
    total = 0
    with src.open("rb") as fh, lens_dst.open("wb") as lens, offsets_dst.open("wb") as offsets:
        _npy_header(lens, np.int32, n)
        _npy_header(offsets, np.int64, n + 1)
        offsets.write(np.zeros(1, dtype=np.int64).tobytes())
        for block in _blocks(fh):
            lens.write(block.tobytes())
            ends = np.cumsum(block, dtype=np.int64)
            offsets.write((ends + total).tobytes())
            total += int(ends[-1])
    return n, total


def _remap_file(src: Path, dst: Path, remap: np.ndarray, dtype: type) -> None:
    """Scratch int32 provisional ids to a ``.npy`` of final ids, a block at a time (read and
    written as plain files: no memory map whose pages would count as the process's memory)."""
    n = src.stat().st_size // 4
    with src.open("rb") as fh, dst.open("wb") as out:
        _npy_header(out, dtype, n)
        for block in _blocks(fh):
            out.write(remap[block].astype(dtype).tobytes())


def _write_json(path: Path, value: Any) -> None:
    with path.open("w", encoding="utf-8") as fh:
        json.dump(value, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder to ``out``; an old ``out`` is moved aside first, then removed."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- reading a cache


@dataclass
class CachedData:
    """A preprocessed cache, opened lazily: what :func:`~seq2seq_lib.course.train_translator`
    needs (``src_vocab``, ``trg_vocab``, ``train``, ``valid``) plus the held-out raw text.

    The datasets are :class:`~seq2seq_lib.batching.CachedDataset` objects: nothing is read until
    a batch asks for it.
    """

    path: Path
    manifest: dict[str, Any]
    src_vocab: Vocab
    trg_vocab: Vocab
    train: CachedDataset
    valid: CachedDataset
    test: CachedDataset
    # the usual spellings of the training targets (a lower-cased cache), from truecase.json
    truecaser: TrueCaser | None = None

    @property
    def cache_hash(self) -> str:
        return self.manifest["cache_hash"]

    def pairs(self, split: str) -> list[Pair]:
        """The raw (zh, en) text of the ``valid`` or ``test`` split, in order (read on each call)."""
        if split not in HELD_OUT:
            raise ValueError(f"the cache keeps the raw text of {HELD_OUT}, not of {split!r}")
        return read_parallel(self.path / f"{split}.zh", self.path / f"{split}.en").pairs

    @property
    def test_pairs(self) -> list[Pair]:
        return self.pairs("test")

    def data_config(self) -> DataConfig:
        """The settings the cache was built with, plus where it is and its hash (what a
        checkpoint trained on it records)."""
        # a cache from before zh_script read its Chinese as written
        settings = {"zh_script": "keep", **self.manifest["settings"]}
        return replace(from_dict(DataConfig, settings), data_dir=str(self.path),
                       cache_hash=self.cache_hash)

    def summary(self) -> str:
        """A few lines describing the corpus, the splits and the vocabularies."""
        result = PreprocessResult(self.path, self.cache_hash, True, self.manifest)
        return "\n".join(result.summary().splitlines()[:-1] + [
            f"cache: {self.path} (hash {self.cache_hash[:12]}, built {self.manifest['created']})"])


def _load_vocab(folder: Path, side: str, manifest: dict[str, Any]) -> Vocab:
    """A side's vocabulary: its SentencePiece model (``{side}_spm.model``) or its token list."""
    if side not in manifest.get("spm", {}):
        return Vocab.load(folder / f"{side}_vocab.json")
    model = (folder / f"{side}_spm.model").read_bytes()
    if hashlib.sha256(model).hexdigest() != manifest["spm"][side]:
        raise CacheError(f"{folder}: damaged cache ({side}_spm.model is not the model the "
                         "manifest names); run preprocess again with --force")
    return SubwordVocab(model)


def load_cache(folder: str | Path, max_tokens: int | None = None, num_workers: int = 0) -> CachedData:
    """Open a cache written by :func:`preprocess`, checking its manifest and file sizes.

    :param max_tokens: token budget for the training batches (see
        :class:`~seq2seq_lib.batching.TokenBucketSampler`); None keeps ``batch_size`` sentences.
    :param num_workers: DataLoader worker processes that prefetch training batches (the
        held-out splits are read by the main process: they are small and read in order).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CacheError(f"{folder}: cache folder not found (write one with "
                         f"'python -m seq2seq_lib preprocess ... --out {folder}')")
    manifest = read_manifest(folder)
    if manifest is None:
        raise CacheError(f"{folder}: not a finished cache (no readable manifest.json); "
                         "run preprocess again")
    damage = _damage(folder, manifest)
    if damage:
        raise CacheError(f"{folder}: damaged cache ({damage}); run preprocess again with --force")
    src_vocab, trg_vocab = (_load_vocab(folder, side, manifest) for side in SIDES)
    train = CachedDataset(folder, "train", src_vocab.pad_id, max_tokens, num_workers)
    held_out = {split: CachedDataset(folder, split, src_vocab.pad_id) for split in HELD_OUT}
    truecaser = None
    if (folder / TRUECASE_FILE).is_file():
        truecaser = TrueCaser(json.loads((folder / TRUECASE_FILE).read_text(encoding="utf-8")))
    return CachedData(folder, manifest, src_vocab, trg_vocab, train, **held_out,
                      truecaser=truecaser)
