"""Vocabulary: tokens to contiguous ids and back, with the lesson's four special tokens."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

UNK, PAD, SOS, EOS = "<unk>", "<pad>", "<sos>", "<eos>"
SPECIALS = (UNK, PAD, SOS, EOS)  # ids 0, 1, 2, 3, as in the lesson


def ranked_tokens(counts: Mapping[str, int], min_freq: int = 1,
                  max_size: int | None = None) -> list[str]:
    """The non-special tokens :meth:`Vocab.from_counts` keeps, in id order (``max_size=None``:
    all tokens seen at least ``min_freq`` times)."""
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    if max_size is not None and max_size < len(SPECIALS):
        raise ValueError(f"max_size must be at least {len(SPECIALS)} (the specials), got {max_size}")
    ranked = sorted((tok for tok, n in counts.items() if n >= min_freq and tok not in SPECIALS),
                    key=lambda tok: (-counts[tok], tok))
    return ranked if max_size is None else ranked[: max_size - len(SPECIALS)]


class Vocab:
    """A fixed token list; ``itos[i]`` is the token with id ``i``.

    Build one with :meth:`build` (from token lists) or :meth:`from_counts`; the ids are contiguous, so ``len(vocab)`` is the right size for
    an embedding table.
    """

    unk_id, pad_id, sos_id, eos_id = 0, 1, 2, 3

    def __init__(self, itos: list[str]):
        if tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {itos[:4]}")
        if len(set(itos)) != len(itos):
            raise ValueError("a vocabulary must not list a token twice")
        self.itos = list(itos)
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}

    @classmethod
    def build(
        cls, tokenized: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Count tokens and keep the most frequent ones (see :meth:`from_counts`).

        :param min_freq: tokens seen fewer times become ``<unk>``.
        :param max_size: upper bound on ``len(vocab)``, the four specials included.
        """
        return cls.from_counts(Counter(tok for sent in tokenized for tok in sent), min_freq,
                               max_size)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_freq: int = 1,
                    max_size: int | None = None) -> Vocab:
        """The vocabulary of tokens counted ``counts[token]`` times: the one ranking rule.

        The specials come first; then every other token seen at least ``min_freq`` times, most
        frequent first, ties broken alphabetically (so the same corpus gives the same ids), cut
        to ``max_size`` entries in all.
        """
        return cls(list(SPECIALS) + ranked_tokens(counts, min_freq, max_size))

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(token, self.unk_id)

    def encode(self, tokens: list[str], add_sos_eos: bool = False) -> list[int]:
        """Token list to ids; unknown tokens become ``<unk>``."""
        ids = [self.stoi.get(tok, self.unk_id) for tok in tokens]
        return [self.sos_id, *ids, self.eos_id] if add_sos_eos else ids

    def decode(self, ids: Iterable[int], strip_specials: bool = True) -> list[str]:
        """Ids to tokens, stopping at ``<eos>`` and dropping ``<sos>``/``<pad>`` when asked."""
        out = []
        for i in ids:
            i = int(i)
            if strip_specials and i == self.eos_id:
                break
            if strip_specials and i in (self.sos_id, self.pad_id):
                continue
            out.append(self.itos[i])
        return out

    def unk_rate(self, tokenized: Iterable[list[str]]) -> float:
        """Share of tokens in ``tokenized`` that this vocabulary maps to ``<unk>``."""
        total = unknown = 0
        for sent in tokenized:
            total += len(sent)
            unknown += sum(tok not in self.stoi for tok in sent)
        return unknown / total if total else 0.0

    def to_list(self) -> list[str]:
        """The token list, for checkpoints."""
        return list(self.itos)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as a JSON list of tokens."""
        Path(path).write_text(json.dumps(self.itos, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """Read a vocabulary written by :meth:`save`."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, first={self.itos[4:9]})"


def vocab_stats(train_tokens: Sequence[list[str]], valid_tokens: Sequence[list[str]],
                min_freq: int = 1, max_size: int | None = None) -> dict[str, float]:
    """What one ``(min_freq, max_size)`` choice gives, counted on the training tokens.

    :return: ``size`` (``len(vocab)``, specials included), ``train_types`` (distinct training
        tokens), ``cut_by_min_freq`` and ``cut_by_max_size`` (types each rule leaves out), and the
        ``<unk>`` rate on both splits (``train_unk_rate``, ``valid_unk_rate``).
    """
    vocab = Vocab.build(train_tokens, min_freq, max_size)
    counts = Counter(tok for sent in train_tokens for tok in sent if tok not in SPECIALS)
    frequent = sum(freq >= min_freq for freq in counts.values())
    return {
        "size": len(vocab),
        "train_types": len(counts),
        "cut_by_min_freq": len(counts) - frequent,
        "cut_by_max_size": frequent - (len(vocab) - len(SPECIALS)),
        "train_unk_rate": vocab.unk_rate(train_tokens),
        "valid_unk_rate": vocab.unk_rate(valid_tokens),
    }


def unk_rate_curve(train_tokens: Sequence[list[str]], valid_tokens: Sequence[list[str]],
                   min_freq: int = 1) -> tuple[list[int], list[float]]:
    """The validation ``<unk>`` rate for every vocabulary size that ``min_freq`` allows.

    ``rates[k]`` equals ``Vocab.build(train_tokens, min_freq, sizes[k]).unk_rate(valid_tokens)``
    for ``sizes[k] = 4 + k`` (the four specials plus the ``k`` most frequent tokens), computed in
    one pass instead of one build per size.
    """
    counts = Counter(tok for sent in train_tokens for tok in sent)
    ranked = ranked_tokens(counts, min_freq)  # the order Vocab.build keeps
    valid_counts = Counter(tok for sent in valid_tokens for tok in sent)
    total = sum(valid_counts.values())
    covered = sum(valid_counts[s] for s in SPECIALS)
    sizes, rates = [len(SPECIALS)], [(total - covered) / total if total else 0.0]
    for tok in ranked:
        covered += valid_counts[tok]
        sizes.append(sizes[-1] + 1)
        rates.append((total - covered) / total if total else 0.0)
    return sizes, rates
