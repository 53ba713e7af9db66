"""Reading parallel corpora, validating them, and splitting them deterministically."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .config import DataConfig

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
        extra = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n)
        return f"{len(self.pairs)} pairs from {self.origin}" + (f" (dropped {extra})" if extra else "")


@dataclass
class Splits:
    """Train / validation / test pairs."""

    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]


def _read_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 text file (BOM and CRLF accepted) into lines, naming the bad line on error."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorpusError(
                f"{path}:{number}: not valid UTF-8 (byte {line[exc.start]:#04x} at column {exc.start + 1})"
            ) from None
        out.append(text.rstrip("\r"))
    return out


def _keep_nonempty(pairs: list[Pair]) -> tuple[list[Pair], int]:
    kept = [(zh.strip(), en.strip()) for zh, en in pairs]
    kept = [(zh, en) for zh, en in kept if zh and en]
    return kept, len(pairs) - len(kept)


def read_parallel(src_path: str | Path, trg_path: str | Path) -> Corpus:
    """Read two aligned files, one sentence a line: Chinese in ``src_path``, English in ``trg_path``."""
    zh_lines, en_lines = _read_lines(src_path), _read_lines(trg_path)
    if len(zh_lines) != len(en_lines):
        raise CorpusError(
            f"{src_path} has {len(zh_lines)} lines but {trg_path} has {len(en_lines)}: "
            "the two files must be aligned line by line"
        )
    pairs, empty = _keep_nonempty(list(zip(zh_lines, en_lines)))
    return Corpus(pairs, origin=f"{src_path} + {trg_path}", dropped={"empty pairs": empty})


def read_tsv(path: str | Path) -> Corpus:
    """Read Tatoeba/manythings pairs: ``English<TAB>Chinese[<TAB>attribution]`` per line."""
    raw_pairs: list[Pair] = []
    blank = 0
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            blank += 1
            continue
        cols = line.split("\t")
        if len(cols) < 2:
            raise CorpusError(f"{path}:{number}: no tab found; expected 'English<TAB>Chinese'")
        raw_pairs.append((cols[1], cols[0]))
    pairs, empty = _keep_nonempty(raw_pairs)
    return Corpus(pairs, origin=str(path), dropped={"empty pairs": empty + blank})


def load_hsk() -> Corpus:
    """The embedded corpus: graded HSK 3.0 sentences from the ``hsk-sentences-audio`` package.

    Its 65 entries whose English is the word "placeholder", and 15 numbered ones
    ("placeholder-p1" ...), are dropped and counted.
    """
    from hsk_sentences_audio import load_sentences

    raw_pairs: list[Pair] = []
    placeholders = numbered = 0
    for item in load_sentences():
        en = item["translation"]["en"]
        key = en.strip().lower()
        if key == HSK_PLACEHOLDER:
            placeholders += 1
            continue
        if HSK_NUMBERED_PLACEHOLDER.fullmatch(key):
            numbered += 1
            continue
        raw_pairs.append((item["chinese"], en))
    pairs, empty = _keep_nonempty(raw_pairs)
    return Corpus(
        pairs,
        origin="hsk-sentences-audio (CC-BY-SA-4.0)",
        dropped={"placeholder translations": placeholders, "numbered placeholders": numbered,
                 "empty pairs": empty},
    )


def load_corpus(cfg: DataConfig) -> Corpus:
    """Load the corpus that a :class:`DataConfig` names."""
    if cfg.source == "hsk":
        return load_hsk()
    if cfg.source == "parallel":
        if not cfg.src_path or not cfg.trg_path:
            raise CorpusError("source 'parallel' needs both src_path and trg_path")
        return read_parallel(cfg.src_path, cfg.trg_path)
    if cfg.source == "tsv":
        if not cfg.tsv_path:
            raise CorpusError("source 'tsv' needs tsv_path")
        return read_tsv(cfg.tsv_path)
    raise CorpusError(f"unknown data source {cfg.source!r}; use 'hsk', 'parallel' or 'tsv'")


def split_pairs(
    pairs: list[Pair], valid_frac: float = 0.05, test_frac: float = 0.05, seed: int = 0
) -> Splits:
    """Shuffle with ``seed`` and cut into train / valid / test; the same seed gives the same split."""
    if not 0 <= valid_frac < 1 or not 0 <= test_frac < 1 or valid_frac + test_frac >= 1:
        raise ValueError(f"valid_frac={valid_frac} and test_frac={test_frac} must leave a training part")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_test = round(len(pairs) * test_frac)
    n_valid = round(len(pairs) * valid_frac)
    test = [pairs[i] for i in order[:n_test]]
    valid = [pairs[i] for i in order[n_test : n_test + n_valid]]
    train = [pairs[i] for i in order[n_test + n_valid :]]
    return Splits(train=train, valid=valid, test=test)
