"""Reading parallel corpora, validating them, and splitting them deterministically.

Two ways to read: whole files into a :class:`Corpus` (``read_parallel``, ``read_tsv``,
``load_hsk``), or one pair at a time as a :class:`CorpusStream` (``stream_parallel``,
``stream_tsv``, ``stream_hsk``) for corpora larger than memory; both report the same errors.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError, DataConfig, check_fractions

Pair = tuple[str, str]  # (chinese, english)

HSK_PLACEHOLDER = "placeholder"
# a further 15 HSK entries read "placeholder-p1" ... "placeholder-p14", "placeholder-q1"
HSK_NUMBERED_PLACEHOLDER = re.compile(r"placeholder-[a-z]\d+")


class CorpusError(ValueError):
    """A corpus file that cannot be read as the course expects; the message names file and line."""


@dataclass
class Corpus:
    """Clean (zh, en) pairs and a record of what was dropped while reading."""

    pairs: list[Pair]
    origin: str
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pairs)

    def summary(self) -> str:
        """One line: how many pairs, from where, and what was left out."""
        return _summary(len(self.pairs), self.origin, self.dropped)


def _summary(n_pairs: int, origin: str, dropped: dict[str, int]) -> str:
    extra = ", ".join(f"{n} {why}" for why, n in dropped.items() if n)
    return f"{n_pairs} pairs from {origin}" + (f" (dropped {extra})" if extra else "")


@dataclass
class Splits:
    """Train / validation / test pairs."""

    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]


def decode_line(path: str | Path, number: int, line: bytes) -> str:
    """One line (without its ``\\n``) as text, or a :class:`CorpusError` naming file and line."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path}:{number}: not valid UTF-8 (byte {line[exc.start]:#04x} at column {exc.start + 1})"
        ) from None
    return text.rstrip("\r")


def _collect(stream: CorpusStream) -> Corpus:
    """A whole :class:`Corpus` read through its stream: one reader, the same pairs, errors and
    drop counts either way."""
    pairs = list(stream)
    return Corpus(pairs, origin=stream.origin, dropped=dict(stream.dropped))


def read_parallel(src_path: str | Path, trg_path: str | Path) -> Corpus:
    """Read two aligned files, one sentence a line: Chinese in ``src_path``, English in ``trg_path``."""
    return _collect(stream_parallel(src_path, trg_path))


def read_tsv(path: str | Path) -> Corpus:
    """Read Tatoeba/manythings pairs: ``English<TAB>Chinese[<TAB>attribution]`` per line."""
    return _collect(stream_tsv(path))


def _tsv_pair(path: str | Path, number: int, line: str) -> Pair:
    """``English<TAB>Chinese[<TAB>...]`` as (zh, en), unstripped."""
    cols = line.split("\t")
    if len(cols) < 2:
        raise CorpusError(f"{path}:{number}: no tab found; expected 'English<TAB>Chinese'")
    return cols[1], cols[0]


def load_hsk() -> Corpus:
    """The embedded corpus: graded HSK 3.0 sentences from the ``hsk-sentences-audio`` package.

    Its 65 entries whose English is the word "placeholder", and 15 numbered ones
    ("placeholder-p1" ...), are dropped and counted.
    """
    return _collect(stream_hsk())


def load_corpus(cfg: DataConfig) -> Corpus:
    """Load the corpus that a :class:`DataConfig` names (:func:`stream_corpus`, read whole)."""
    return _collect(stream_corpus(cfg))


def held_out_fractions(n_pairs: int | None, valid_frac: float, test_frac: float,
                       valid_max: int | None = None, test_max: int | None = None
                       ) -> tuple[float, float]:
    """The (validation, test) fractions a split of ``n_pairs`` uses: each the configured one,
    lowered where it would hold out more than ``valid_max`` / ``test_max`` pairs, so that
    validation and the final test stay minutes at millions of pairs; a small corpus keeps its
    fractions. ``n_pairs`` None (not known): the fractions as they are."""
    check_fractions(valid_frac, test_frac)
    if not n_pairs:
        return valid_frac, test_frac
    return tuple(frac if cap is None else min(frac, cap / n_pairs)  # type: ignore[return-value]
                 for frac, cap in ((valid_frac, valid_max), (test_frac, test_max)))


def split_pairs(
    pairs: list[Pair], valid_frac: float = 0.05, test_frac: float = 0.05, seed: int = 0,
    valid_max: int | None = None, test_max: int | None = None,
) -> Splits:
    """Shuffle with ``seed`` and cut into train / valid / test; the same seed gives the same split.

    :param valid_max: / :param test_max: hold out at most this many pairs (None: no cap).
    """
    check_fractions(valid_frac, test_frac)
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_test = round(len(pairs) * test_frac)
    n_valid = round(len(pairs) * valid_frac)
    n_test = n_test if test_max is None else min(n_test, test_max)
    n_valid = n_valid if valid_max is None else min(n_valid, valid_max)
    test = [pairs[i] for i in order[:n_test]]
    valid = [pairs[i] for i in order[n_test : n_test + n_valid]]
    train = [pairs[i] for i in order[n_test + n_valid :]]
    return Splits(train=train, valid=valid, test=test)


# ---------------------------------------------------------------- streaming reads


@dataclass
class CorpusStream:
    """A corpus read one pair at a time, so memory does not grow with its size.

    Iterate it (pairs) or :meth:`numbered` ((record number, pair)): each pass reads the input
    again. Pairs come stripped, empty ones are dropped and counted in ``dropped``, and a bad line
    raises the same :class:`CorpusError` (file and line) as the whole-file readers, when the
    stream reaches it. ``n_pairs`` and ``dropped`` count as the pass goes (a new pass restarts them).
    """

    origin: str
    records: Callable[[dict[str, int]], Iterator[tuple[int, Pair]]]
    dropped: dict[str, int] = field(default_factory=dict)
    n_pairs: int = 0

    def numbered(self) -> Iterator[tuple[int, Pair]]:
        """(record number, (zh, en)): the 1-based line number in the input file (or the entry
        number in the HSK package), which :func:`split_of` turns into a split."""
        self.dropped, self.n_pairs = dict.fromkeys(self.dropped, 0), 0
        for number, (zh, en) in self.records(self.dropped):
            zh, en = zh.strip(), en.strip()
            if not (zh and en):
                self.dropped["empty pairs"] += 1
                continue
            self.n_pairs += 1
            yield number, (zh, en)

    def __iter__(self) -> Iterator[Pair]:
        for _, pair in self.numbered():
            yield pair

    def summary(self) -> str:
        """Like :meth:`Corpus.summary`, for the pairs read so far."""
        return _summary(self.n_pairs, self.origin, self.dropped)


def iter_lines(path: str | Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, one at a time (BOM and CRLF accepted, as :func:`read_parallel`).

    A line that is not UTF-8 raises :class:`CorpusError` naming file and line when it is reached.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            yield decode_line(path, number, line[:-1] if line.endswith(b"\n") else line)


def stream_parallel(src_path: str | Path, trg_path: str | Path) -> CorpusStream:
    """Two aligned files read in step; different line counts raise :func:`read_parallel`'s error
    when the shorter file ends (the rest of the longer one is read to count its lines)."""

    def records(dropped: dict[str, int]) -> Iterator[tuple[int, Pair]]:
        zh_lines, en_lines = iter_lines(src_path), iter_lines(trg_path)
        number = 0
        for number, zh in enumerate(zh_lines, start=1):
            en = next(en_lines, None)
            if en is None:
                n_zh = number + sum(1 for _ in zh_lines)
                raise CorpusError(f"{src_path} has {n_zh} lines but {trg_path} has {number - 1}: "
                                  "the two files must be aligned line by line")
            yield number, (zh, en)
        n_en = number + sum(1 for _ in en_lines)
        if n_en != number:
            raise CorpusError(f"{src_path} has {number} lines but {trg_path} has {n_en}: "
                              "the two files must be aligned line by line")

    return CorpusStream(f"{src_path} + {trg_path}", records, {"empty pairs": 0})


def stream_tsv(path: str | Path) -> CorpusStream:
    """:func:`read_tsv`, one line at a time; blank lines count as empty pairs."""

    def records(dropped: dict[str, int]) -> Iterator[tuple[int, Pair]]:
        for number, line in enumerate(iter_lines(path), start=1):
            if not line.strip():
                dropped["empty pairs"] += 1
                continue
            yield number, _tsv_pair(path, number, line)

    return CorpusStream(str(path), records, {"empty pairs": 0})


def stream_hsk() -> CorpusStream:
    """:func:`load_hsk` as a stream (the package holds the sentences in memory anyway)."""

    def records(dropped: dict[str, int]) -> Iterator[tuple[int, Pair]]:
        from hsk_sentences_audio import load_sentences

        for number, item in enumerate(load_sentences(), start=1):
            en = item["translation"]["en"]
            key = en.strip().lower()
            if key == HSK_PLACEHOLDER:
                dropped["placeholder translations"] += 1
            elif HSK_NUMBERED_PLACEHOLDER.fullmatch(key):
                dropped["numbered placeholders"] += 1
            else:
                yield number, (item["chinese"], en)

    return CorpusStream("hsk-sentences-audio (CC-BY-SA-4.0)", records,
                        {"placeholder translations": 0, "numbered placeholders": 0, "empty pairs": 0})


def stream_corpus(cfg: DataConfig) -> CorpusStream:
    """:func:`load_corpus`, as a stream."""
    if cfg.source == "hsk":
        return stream_hsk()
    if cfg.source == "parallel":
        if not cfg.src_path or not cfg.trg_path:
            raise CorpusError("source 'parallel' needs both src_path and trg_path")
        return stream_parallel(cfg.src_path, cfg.trg_path)
    if cfg.source == "tsv":
        if not cfg.tsv_path:
            raise CorpusError("source 'tsv' needs tsv_path")
        return stream_tsv(cfg.tsv_path)
    raise CorpusError(f"unknown data source {cfg.source!r}; use 'hsk', 'parallel' or 'tsv'")


def split_of(number: int, seed: int = 0, valid_frac: float = 0.05, test_frac: float = 0.05) -> str:
    """The split ("train", "valid" or "test") of record ``number``, without reading the corpus.

    The record number (a line number, see :meth:`CorpusStream.numbered`) and the seed are hashed
    (BLAKE2b) to a number u in [0, 1): u < test_frac is test, u < test_frac + valid_frac is valid,
    the rest is train. So each pair lands in a split on its own, the same one on every run and on
    every machine, and the split sizes are close to, not exactly, the fractions. (The in-memory
    :func:`split_pairs` shuffles instead, so the two give different splits of the same corpus.)
    """
    check_fractions(valid_frac, test_frac)
    digest = hashlib.blake2b(f"{seed}:{number}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    return "test" if u < test_frac else "valid" if u < test_frac + valid_frac else "train"


def check_held_out(cfg: DataConfig, n_pairs: int, n_valid: int, n_test: int) -> None:
    """Refuse a held-out split that a positive fraction leaves empty (too few pairs): validation
    would score nothing, and BLEU on an empty test split means nothing."""
    for split, name, n in (("valid", "valid_frac", n_valid), ("test", "test_frac", n_test)):
        frac = getattr(cfg, name)
        if frac > 0 and n == 0:
            more = "a larger limit" if cfg.limit is not None else "a larger corpus"
            raise ConfigError(name, f"{frac:g} of {n_pairs} pairs leaves the {split} split "
                                    f"empty: use {more} or a larger {name}", also=("limit",))
