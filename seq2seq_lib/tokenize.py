"""Tokenizers: jieba for Chinese, spaCy's rule-based English tokenizer, and an English detokenizer.

Both resources load lazily, once per process, and quietly.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

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


def load_user_dict(path: str | Path) -> None:
    """Add a jieba user dictionary (one ``word [freq] [tag]`` a line), e.g. for 机器学习."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: user dictionary not found")
    _jieba().load_userdict(str(path))


def add_word(word: str, freq: int | None = None) -> None:
    """Teach jieba one more word, so it is kept whole."""
    _jieba().add_word(word, freq=freq)


def tokenize_zh(text: str, mode: ZhMode = "precise") -> list[str]:
    """Split Chinese text into words.

    :param mode: ``precise`` (jieba's default, used for training), ``full`` (every dictionary word,
        overlapping), ``search`` (precise plus sub-words of long words) or ``char`` (one token a
        character).
    """
    if mode == "char":
        return [ch for ch in text if not ch.isspace()]
    jb = _jieba()
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
_TIGHT = {"-", "/"}  # spaCy splits "well-known" and "and/or" into three tokens


def detokenize_en(tokens: list[str], capitalize: bool = False) -> str:
    """Join English tokens back into a sentence: the inverse of :func:`tokenize_en` on most text.

    :param capitalize: upper-case the first letter and the pronoun "i" (for lower-cased output).
    ``<unk>`` is written as :data:`UNK_OUTPUT` (⁇).
    """
    tokens = [UNK_OUTPUT if tok == "<unk>" else tok for tok in tokens]
    out = ""
    quote_open = False
    prev = None
    for tok in tokens:
        if tok == '"':
            space = not quote_open and prev is not None
            quote_open = not quote_open
            out += (" " if space else "") + tok
            prev = tok if quote_open else "closed-quote"
            continue
        glue = (
            prev is None
            or tok.lower() in _NO_SPACE_BEFORE
            or prev in _NO_SPACE_AFTER
            or tok in _TIGHT
            or prev in _TIGHT
            or prev == '"'
        )
        out += ("" if glue else " ") + tok
        prev = tok
    if capitalize and out:
        out = re.sub(r"\bi\b", "I", out)
        out = out[0].upper() + out[1:]
    return out
