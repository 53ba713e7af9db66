"""Chinese script: Traditional characters written as Simplified before tokenizing.

Corpora of everyday sentences mix the two scripts (Tatoeba's Mandarin has both 我們 and 我们).
Left as they are, 們 and 们 are two tokens that share nothing: each is learned from only part of
the data, and a sentence in the script the training set rarely uses meets more ``<unk>``. With
``DataConfig.zh_script = "simplified"`` every Chinese sentence, in training and at translation,
goes through OpenCC's Traditional-to-Simplified tables (``t2s``: phrases first, so 乾隆 stays
乾隆 while 乾杯 becomes 干杯). Simplified text comes back unchanged, as do punctuation, Latin
letters and digits. ``"keep"`` leaves the text as written (checkpoints and caches made before
the setting existed read as ``"keep"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=1)
def _t2s():
    from opencc import OpenCC  # the opencc-python-reimplemented package (pure Python)

    return OpenCC("t2s")


def to_script(text: str, script: str) -> str:
    """``text`` in the Chinese script ``script``: "simplified" converts Traditional characters
    (OpenCC t2s), "keep" returns it as it is."""
    if script == "keep":
        return text
    if script == "simplified":
        return _t2s().convert(text)
    raise ValueError(f"zh_script={script!r}: use 'keep' or 'simplified'")


def pairs_in_script(pairs: Sequence[tuple[str, str]], script: str) -> list[tuple[str, str]]:
    """(Chinese, English) pairs with the Chinese side in ``script`` (the English as it is)."""
    if script == "keep":
        return list(pairs)
    return [(to_script(zh, script), en) for zh, en in pairs]
