"""Corpus BLEU through sacrebleu, and perplexity."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sacrebleu.metrics import BLEU, BLEUScore


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]],
                lowercase: bool = False) -> BLEUScore:
    """sacreBLEU (13a tokenization) of detokenized hypotheses.

    :param references: one reference per hypothesis, or several such streams (sacrebleu's layout:
        ``[[ref1 of sentence 1, ref1 of sentence 2, ...], [ref2 of sentence 1, ...]]``).
    :param lowercase: compare case-insensitively (use it when the model was trained lower-cased).
    The returned score prints as e.g. ``BLEU = 12.3 45.6/...``; ``.score`` is the number.
    """
    streams = [list(references)] if references and isinstance(references[0], str) else [
        list(r) for r in references]
    for stream in streams:
        if len(stream) != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(stream)} references")
    return BLEU(lowercase=lowercase).corpus_score(list(hypotheses), streams)


def bleu_signature(lowercase: bool = False) -> str:
    """sacreBLEU's signature string for :func:`corpus_bleu` with these settings."""
    bleu = BLEU(lowercase=lowercase)
    bleu.corpus_score(["a"], [["a"]])  # the signature is only complete after one scoring call
    return str(bleu.get_signature())


def perplexity(loss: float) -> float:
    """exp of a mean cross-entropy (natural log); inf when the loss is too large to exponentiate."""
    return math.exp(loss) if loss < 700 else float("inf")
