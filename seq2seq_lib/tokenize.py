"""Tokenizers: jieba for Chinese, spaCy's rule-based English tokenizer, and an English detokenizer.

The resources load lazily, once per process, and quietly. Every jieba user dictionary gets a
tokenizer of its own, so two checkpoints with different dictionaries never change each other's
segmentation (nor the default one's).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from .subword import SubwordVocab
from .vocab import Vocab

ZhMode = Literal["precise", "full", "search", "char"]


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@lru_cache(maxsize=1)
def _spacy_tokenizer():
    import spacy

    return spacy.blank("en").tokenizer


def zh_mode(zh_tokens: str) -> ZhMode:
    """The :func:`tokenize_zh` mode for ``DataConfig.zh_tokens`` ("word" or "char"; "spm"
    subwords are split by their :class:`~seq2seq_lib.subword.SubwordVocab`, see
    :func:`source_tokens`)."""
    if zh_tokens == "word":
        return "precise"
    if zh_tokens == "char":
        return "char"
    raise ValueError(f"zh_tokens={zh_tokens!r}: use 'word' (jieba) or 'char'")


def source_tokens(text: str, zh_tokens: str, user_dict: str | Path | None = None,
                  vocab: Vocab | None = None) -> list[str]:
    """Chinese text as the model reads it: SentencePiece pieces when ``vocab`` is a
    :class:`~seq2seq_lib.subword.SubwordVocab`, else jieba words or characters (``zh_tokens``)."""
    if isinstance(vocab, SubwordVocab):
        return vocab.tokenize(text)
    if zh_tokens == "spm":
        raise ValueError("zh_tokens='spm' needs its SentencePiece vocabulary to split the text")
    return tokenize_zh(text, zh_mode(zh_tokens), user_dict)


def check_tokens(cfg, src_vocab: Vocab, trg_vocab: Vocab) -> None:
    """Refuse token settings (a :class:`~seq2seq_lib.config.DataConfig`'s ``zh_tokens`` and
    ``en_tokens``) that the vocabularies cannot serve: "spm" needs a SentencePiece vocabulary."""
    if cfg.zh_tokens != "spm":
        zh_mode(cfg.zh_tokens)
    for side, setting, vocab in (("Chinese", cfg.zh_tokens, src_vocab),
                                 ("English", getattr(cfg, "en_tokens", "word"), trg_vocab)):
        if (setting == "spm") != isinstance(vocab, SubwordVocab):
            kind = "a SentencePiece" if isinstance(vocab, SubwordVocab) else "a word"
            raise ValueError(f"{side} tokens {setting!r} do not fit {kind} vocabulary")


def target_tokens(text: str, lowercase: bool = True, vocab: Vocab | None = None) -> list[str]:
    """English text as the model writes it: SentencePiece pieces of the (lower-cased) text when
    ``vocab`` is a :class:`~seq2seq_lib.subword.SubwordVocab`, else spaCy's words."""
    if isinstance(vocab, SubwordVocab):
        return vocab.tokenize(text.lower() if lowercase else text)
    return tokenize_en(text, lowercase)


def load_user_dict(path: str | Path):
    """The jieba tokenizer of a user dictionary (one ``word [freq] [tag]`` a line, e.g. 机器学习):
    jieba's dictionary plus these words. :func:`tokenize_zh` with ``user_dict=path`` uses it.

    Each dictionary file has its own tokenizer, loaded once and loaded again when the file
    changes; the default tokenizer (no ``user_dict``) is left as it is.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: user dictionary not found")
    return _user_tokenizer(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _user_tokenizer(path: str, mtime_ns: int):
    """A fresh jieba tokenizer with the user dictionary at ``path`` (as it was at ``mtime_ns``)."""
    tokenizer = _jieba().Tokenizer()
    tokenizer.initialize()
    tokenizer.load_userdict(path)
    return tokenizer


def add_word(word: str, freq: int | None = None) -> None:
    """Teach the default jieba tokenizer one more word, so it is kept whole (in this process)."""
    _jieba().add_word(word, freq=freq)


def tokenize_zh(text: str, mode: ZhMode = "precise", user_dict: str | Path | None = None
                ) -> list[str]:
    """Split Chinese text into words.

    :param mode: ``precise`` (jieba's default, used for training), ``full`` (every dictionary word,
        overlapping), ``search`` (precise plus sub-words of long words) or ``char`` (one token a
        character).
    :param user_dict: a jieba user dictionary file whose words are kept whole (see
        :func:`load_user_dict`); None for jieba's own dictionary.
    """
    if mode == "char":
        return [ch for ch in text if not ch.isspace()]
    jb = load_user_dict(user_dict) if user_dict else _jieba()
    if mode == "precise":
        words = jb.lcut(text, cut_all=False, HMM=True)
    elif mode == "full":
        words = jb.lcut(text, cut_all=True)
    elif mode == "search":
        words = jb.lcut_for_search(text)
    else:
        raise ValueError(f"unknown jieba mode {mode!r}; use precise, full, search or char")
    return [w for w in words if w.strip()]


def tokenize_en(text: str, lowercase: bool = True) -> list[str]:
    """Split English text with ``spacy.blank("en")``'s tokenizer (no model download needed)."""
    tokens = [t.text for t in _spacy_tokenizer()(text) if not t.is_space]
    return [t.lower() for t in tokens] if lowercase else tokens


# How an unknown word is written in detokenized output: one symbol that sacreBLEU keeps as one
# token and that never matches a reference word ("<unk>" would count as "<", "unk", ">").
UNK_OUTPUT = "\u2047"  # ⁇, as SentencePiece writes it

_NO_SPACE_BEFORE = {".", ",", "!", "?", ";", ":", "%", ")", "]", "}", "...", "n't", "'s", "'re",
                    "'ve", "'ll", "'d", "'m", "’s", "’re", "’ve", "’ll", "’d", "’m", "n’t"}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "#"}
# spaCy splits "well-known" and "and/or" into three tokens; "big eyes—so cute" keeps its dash tight
_TIGHT = {"-", "/", "—"}


@lru_cache(maxsize=1)
def _fused_words() -> dict[tuple[str, ...], str]:
    """The words spaCy's tokenizer exceptions split without an apostrophe, by their lower-cased
    pieces: ``("can", "not")`` → ``"cannot"``, ``("gon", "na")``, ``("got", "ta")``,
    ``("do", "nt")``, ``("y'", "all")``... (the pieces that start with an apostrophe, like
    ``'m``, are glued by :data:`_NO_SPACE_BEFORE`, so ``I'm a`` never becomes ``I'ma``)."""
    from spacy.lang.en.tokenizer_exceptions import TOKENIZER_EXCEPTIONS
    from spacy.symbols import ORTH

    fused = {}
    for word, pieces in TOKENIZER_EXCEPTIONS.items():
        texts = [piece[ORTH] for piece in pieces]
        if (len(texts) > 1 and re.fullmatch(r"[A-Za-z'’]+", word) and "".join(texts) == word
                and not any(t[0] in "'’" for t in texts[1:])):
            fused[tuple(t.lower() for t in texts)] = word.lower()
    return fused


# split words that stay apart before these words: "He can not only sing but also dance."
_APART_BEFORE = {("can", "not"): {"only"}}


def _fused_positions(tokens: list[str]) -> set[int]:
    """Positions of tokens that continue a word spaCy split (the "not" of "can not")."""
    fused, lower = _fused_words(), [t.lower() for t in tokens]
    longest = max(map(len, fused))
    glued: set[int] = set()
    for i in range(len(tokens)):
        for n in range(min(longest, len(tokens) - i), 1, -1):
            span, after = tuple(lower[i:i + n]), lower[i + n] if i + n < len(lower) else None
            if span in fused and after not in _APART_BEFORE.get(span, ()):
                glued.update(range(i + 1, i + n))
                break
    return glued


def _quote_roles(tokens: list[str]) -> dict[int, str]:
    """``open`` / ``close`` for every quote token; a ``'`` without a partner after it is an
    ``apostrophe`` (the plural possessive of "others' things")."""
    roles, double_open, single_open = {}, False, False
    for i, tok in enumerate(tokens):
        if tok == '"':
            roles[i] = "close" if double_open else "open"
            double_open = not double_open
        elif tok == "'":
            if single_open:
                roles[i], single_open = "close", False
            elif "'" in tokens[i + 1:]:
                roles[i], single_open = "open", True
            else:
                roles[i] = "apostrophe"
    return roles


def _glued(tokens: list[str]) -> set[int]:
    """Positions of the tokens written without a space before them."""
    glued, roles = {0} | _fused_positions(tokens), _quote_roles(tokens)
    for i in range(1, len(tokens)):
        tok, prev = tokens[i], tokens[i - 1]
        if roles.get(i) in ("close", "apostrophe") or roles.get(i - 1) == "open":
            glued.add(i)
        elif prev in _NO_SPACE_AFTER:
            glued.add(i)
        elif roles.get(i) == "open":
            continue
        elif tok.lower() in _NO_SPACE_BEFORE or tok in _TIGHT or prev in _TIGHT:
            glued.add(i)
    return glued


def detokenize_en(tokens: list[str], capitalize: bool = False) -> str:
    """Join English tokens back into a sentence: the inverse of :func:`tokenize_en` on most text
    (clitics, spaCy's split words like "cannot" and "gonna", quotes, dashes, punctuation).

    :param capitalize: upper-case the first letter and the pronoun "i" (for lower-cased output).
    ``<unk>`` is written as :data:`UNK_OUTPUT` (⁇).
    """
    tokens = [UNK_OUTPUT if tok == "<unk>" else tok for tok in tokens]
    glued = _glued(tokens)
    out = "".join(tok if i in glued else " " + tok for i, tok in enumerate(tokens))
    return capitalize_sentence(out) if capitalize else out


def capitalize_sentence(text: str) -> str:
    """Upper-case the first letter and the pronoun "i" of a lower-cased sentence."""
    if not text:
        return text
    text = re.sub(r"\bi\b", "I", text)
    return text[0].upper() + text[1:]


def detokenize_output(tokens: list[str], vocab: Vocab | None = None, capitalize: bool = False,
                      truecaser=None) -> str:
    """Output tokens to an English sentence: SentencePiece pieces joined exactly when ``vocab``
    is a :class:`~seq2seq_lib.subword.SubwordVocab`, else :func:`detokenize_en` (``<unk>`` as ⁇).

    :param truecaser: a :class:`~seq2seq_lib.truecase.TrueCaser` that restores the usual
        spelling of each word (lower-cased output only).
    """
    if isinstance(vocab, SubwordVocab):
        text = vocab.detokenize(tokens).strip()
        text = truecaser.apply_text(text) if truecaser is not None else text
        return capitalize_sentence(text) if capitalize else text
    if truecaser is not None:
        tokens = truecaser.apply(tokens)
    return detokenize_en(tokens, capitalize=capitalize)
