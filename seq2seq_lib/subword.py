"""Subword vocabularies: a small reference BPE (what notebook 09 builds by hand) and SentencePiece.

Byte-pair encoding (Sennrich et al., 2016) starts from characters and merges, again and again,
the pair of neighbouring symbols seen most often in the training words. Every word ends with the
end-of-word marker :data:`END_OF_WORD`, so "low" at the end of a word and "low" inside "lower"
stay different symbols, and a segmentation can be joined back without ambiguity.

:class:`SubwordVocab` is the real thing: a SentencePiece model trained on the training split only,
with ``byte_fallback`` (a character it never saw becomes its UTF-8 bytes, never ``<unk>``, so no
output is ever ⁇). SentencePiece's special ids are set to the :class:`~seq2seq_lib.vocab.Vocab`
ones (``<unk>`` 0, ``<pad>`` 1, ``<sos>`` 2, ``<eos>`` 3), so a piece's SentencePiece id *is* its
vocabulary id: the vocabulary lists the model's pieces in the model's order. The model is trained
in memory and travels as bytes: inside checkpoints and cache folders, no other file needed.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property

from .config import ConfigError
from .vocab import EOS, PAD, SOS, SPECIALS, UNK, Vocab

END_OF_WORD = "</w>"
Pair = tuple[str, str]

# ---------------------------------------------------------------- reference BPE


def pair_counts(words: Mapping[tuple[str, ...], int]) -> Counter[Pair]:
    """How often each pair of neighbouring symbols would be merged, weighted by word counts.

    Occurrences that overlap count once: in ``a a a`` the pair ``(a, a)`` counts 1, because
    merging it gives ``aa a`` (one merge), not two.
    """
    counts: Counter[Pair] = Counter()
    for symbols, freq in words.items():
        last_start: dict[Pair, int] = {}
        for i in range(len(symbols) - 1):
            pair = (symbols[i], symbols[i + 1])
            if last_start.get(pair) == i - 1:  # overlaps the occurrence just counted
                continue
            last_start[pair] = i
            counts[pair] += freq
    return counts


def merge_pair(symbols: Sequence[str], pair: Pair) -> tuple[str, ...]:
    """``symbols`` with every occurrence of ``pair`` merged, scanning left to right."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def word_symbols(word: str) -> tuple[str, ...]:
    """A word as BPE starts from it: its characters, then :data:`END_OF_WORD`."""
    return (*word, END_OF_WORD)


def learn_bpe(word_counts: Mapping[str, int], n_merges: int) -> list[Pair]:
    """Learn up to ``n_merges`` merges from ``{word: count}``, most frequent pair first.

    Tie-break rule: among pairs with the same count, the smallest pair in Python's order of
    ``(left, right)`` string tuples wins (``("a", "b")`` before ``("a", "c")`` before
    ``("b", "a")``), so the result never depends on the order of ``word_counts``. Learning stops
    early when no word has two symbols left.

    :return: the merges in the order they were learned (the order :func:`apply_bpe` applies them).
    """
    words = Counter({word_symbols(w): n for w, n in word_counts.items() if w and n > 0})
    merges: list[Pair] = []
    for _ in range(n_merges):
        counts = pair_counts(words)
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for symbols, freq in words.items():
            merged[merge_pair(symbols, best)] += freq
        words = merged
    return merges


def apply_bpe(word: str, merges: Sequence[Pair]) -> list[str]:
    """Segment ``word`` with learned merges, applied one after another in their learned order.

    A word never seen in training is segmented all the same (into known pieces where the merges
    apply, single characters elsewhere); the last symbol carries :data:`END_OF_WORD`.
    """
    symbols = word_symbols(word)
    for pair in merges:
        symbols = merge_pair(symbols, pair)
    return list(symbols)


# ---------------------------------------------------------------- SentencePiece

N_BYTE_PIECES = 256  # byte_fallback adds one piece per byte value: <0x00> ... <0xFF>


def train_sentencepiece(sentences: Iterable[str], n_pieces: int,
                        character_coverage: float = 1.0) -> bytes:
    """Train a SentencePiece BPE model in memory and return it (the serialized model proto).

    :param sentences: the training text, one sentence per item (the training split only).
    :param n_pieces: pieces learned from the text (characters and subwords); the four specials
        and the 256 byte pieces come on top, so the vocabulary has up to
        ``n_pieces + 260`` entries (fewer when the text has fewer distinct pieces).
    :param character_coverage: share of the characters kept as pieces of their own; the rarest
        others are written as bytes (0.9995 suits Chinese, 1.0 English).
    Text is not normalized (``identity``, spaces kept), so decoding gives back exactly the text
    encoded.
    """
    import sentencepiece as spm

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, model_type="bpe",
            vocab_size=n_pieces + len(SPECIALS) + N_BYTE_PIECES,
            hard_vocab_limit=False, byte_fallback=True, character_coverage=character_coverage,
            normalization_rule_name="identity", remove_extra_whitespaces=False,
            unk_id=0, pad_id=1, bos_id=2, eos_id=3,
            unk_piece=UNK, pad_piece=PAD, bos_piece=SOS, eos_piece=EOS,
            num_threads=1, minloglevel=2)
    except RuntimeError as exc:
        raise _too_small(n_pieces, str(exc)) from None
    return model.getvalue()


def _too_small(n_pieces: int, message: str) -> ConfigError:
    """SentencePiece's refusal, in the terms of ``spm_vocab`` (pieces besides the fixed 260)."""
    sizes = re.search(r"(\d+) vs (\d+)", message)
    if "required_chars" in message and sizes:
        needed = int(sizes.group(2)) - len(SPECIALS) - N_BYTE_PIECES
        return ConfigError("spm_vocab", f"{n_pieces} is too small: the training text has {needed} "
                                        f"characters that need pieces of their own (give at "
                                        f"least {needed})")
    return ConfigError("spm_vocab", f"{n_pieces} cannot be trained on this text (SentencePiece: "
                                    f"{message.split('] ')[-1]})")


class SubwordVocab(Vocab):
    """A :class:`~seq2seq_lib.vocab.Vocab` whose tokens are a SentencePiece model's pieces.

    ``itos[i]`` is the model's piece ``i`` (the specials first, as every vocabulary), so
    :meth:`encode` and :meth:`decode` work as for words; :meth:`tokenize` splits text into
    pieces and :meth:`detokenize` joins pieces back into text, exactly.
    """

    def __init__(self, model: bytes):
        self.model = bytes(model)
        try:
            sp = self.processor
        except RuntimeError as exc:
            raise ValueError(f"not a SentencePiece model ({exc})") from None
        super().__init__([sp.id_to_piece(i) for i in range(sp.get_piece_size())])

    @classmethod
    def train(cls, sentences: Iterable[str], n_pieces: int,
              character_coverage: float = 1.0) -> SubwordVocab:
        """A vocabulary trained on ``sentences`` (see :func:`train_sentencepiece`)."""
        return cls(train_sentencepiece(sentences, n_pieces, character_coverage))

    @cached_property
    def processor(self):
        """The loaded SentencePiece model (loaded once, on first use)."""
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=self.model)

    def tokenize(self, text: str) -> list[str]:
        """Text to pieces: ``"lower"`` → ``["▁low", "er"]``; an unseen character → byte pieces."""
        return self.processor.encode(text, out_type=str)

    def detokenize(self, pieces: Sequence[str]) -> str:
        """Pieces to text: the inverse of :meth:`tokenize` (an ``<unk>`` piece is written ⁇)."""
        return self.processor.decode_pieces(list(pieces))

    def __reduce__(self):  # pickled as its model bytes (worker processes of the cache)
        return (type(self), (self.model,))

    def __repr__(self) -> str:
        return f"SubwordVocab(size={len(self)}, first={self.itos[4 + N_BYTE_PIECES:][:5]})"
