"""Corpus BLEU through sacrebleu (also per source-length bin), and perplexity."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass
class LengthBin:
    """Corpus BLEU of the sentences whose source length falls in one bin.

    ``label``: e.g. ``"≤5"``, ``"6–8"``, ``">12"``; ``n``: sentences in the bin; ``bleu``: their
    corpus BLEU (``nan`` when the bin is empty).
    """

    label: str
    n: int
    bleu: float


def length_bin_labels(edges: Sequence[int]) -> list[str]:
    """Labels of the bins cut at ``edges`` (upper ends, inclusive): (5, 8, 12) gives
    ``["≤5", "6–8", "9–12", ">12"]``."""
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges must be increasing and not empty, got {list(edges)}")
    inner = [f"{a + 1}–{b}" if b > a + 1 else str(b) for a, b in zip(edges, edges[1:])]
    return [f"≤{edges[0]}", *inner, f">{edges[-1]}"]


def bleu_by_length(hypotheses: Sequence[str], references: Sequence[str], lengths: Sequence[int],
                   edges: Sequence[int] = (5, 8, 12), lowercase: bool = False) -> list[LengthBin]:
    """Corpus BLEU per source-length bin: how quality changes as sentences get longer.

    :param lengths: one length per sentence (e.g. its number of jieba tokens).
    :param edges: upper ends of the bins, inclusive; the last bin holds everything longer.
    :return: one :class:`LengthBin` per bin, shortest first.
    """
    if not len(hypotheses) == len(references) == len(lengths):
        raise ValueError(f"{len(hypotheses)} hypotheses, {len(references)} references and "
                         f"{len(lengths)} lengths: one of each per sentence")
    labels = length_bin_labels(edges)
    members: list[list[int]] = [[] for _ in labels]
    for i, length in enumerate(lengths):
        members[sum(length > e for e in edges)].append(i)
    return [LengthBin(label, len(idx), corpus_bleu([hypotheses[i] for i in idx],
                                                   [references[i] for i in idx], lowercase).score
                      if idx else math.nan)
            for label, idx in zip(labels, members)]


@dataclass
class PairedBootstrap:
    """Two systems' corpus BLEU on the same sentences, and how sure their difference is.

    ``delta`` = ``bleu_b - bleu_a``; ``low`` / ``high``: the 95 % interval of that difference
    over ``samples`` resamplings of the sentences (sacreBLEU's sufficient statistics, as in
    Koehn 2004); ``p_not_better``: the share of resamplings in which system b was not better.
    An interval that contains 0 means: no difference this test set can show.
    """

    bleu_a: float
    bleu_b: float
    delta: float
    low: float
    high: float
    p_not_better: float
    samples: int

    def __str__(self) -> str:  # compact, for tables: "+1.20 [+0.35, +2.10]"
        return f"{self.delta:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def sentence_statistics(hypotheses: Sequence[str], references: Sequence[str],
                        lowercase: bool = False) -> list[list[int]]:
    """BLEU's sufficient statistics of every sentence, from sacreBLEU's public scores:
    ``[c, r, matches_1..4, totals_1..4]`` (hypothesis and reference lengths, clipped n-gram
    matches, hypothesis n-grams). Corpus BLEU is a function of their column sums
    (:func:`bleu_from_statistics`)."""
    bleu = BLEU(lowercase=lowercase)
    rows = []
    for hyp, ref in zip(hypotheses, references, strict=True):
        one = bleu.corpus_score([hyp], [[ref]])
        rows.append([one.sys_len, one.ref_len, *one.counts, *one.totals])
    return rows


def bleu_from_statistics(stats: Sequence[int], lowercase: bool = False) -> float:
    """Corpus BLEU (sacreBLEU's defaults) of summed :func:`sentence_statistics`."""
    bleu = BLEU(lowercase=lowercase)
    n = bleu.max_ngram_order
    return BLEU.compute_bleu(
        correct=list(stats[2:2 + n]), total=list(stats[2 + n:2 + 2 * n]), sys_len=int(stats[0]),
        ref_len=int(stats[1]), smooth_method=bleu.smooth_method, smooth_value=bleu.smooth_value,
        effective_order=bleu.effective_order, max_ngram_order=n).score


def paired_bootstrap(hyps_a: Sequence[str], hyps_b: Sequence[str], references: Sequence[str],
                     lowercase: bool = False, samples: int = 1000, seed: int = 0
                     ) -> PairedBootstrap:
    """Paired bootstrap resampling of corpus BLEU (13a, detokenized): b compared with a."""
    return paired_bootstrap_mean([hyps_a], [hyps_b], references, lowercase, samples, seed)


def paired_bootstrap_mean(a_runs: Sequence[Sequence[str]], b_runs: Sequence[Sequence[str]],
                          references: Sequence[str], lowercase: bool = False,
                          samples: int = 1000, seed: int = 0) -> PairedBootstrap:
    """:func:`paired_bootstrap` of the mean over several paired runs (e.g. one per training
    seed): ``a_runs[i]`` and ``b_runs[i]`` are the outputs of run ``i`` of systems a and b.

    Every resampling draws the test sentences once and averages the runs' BLEU differences on
    that draw, so the interval holds both the test set's noise and the runs' spread. ``bleu_a``
    / ``bleu_b`` are the runs' mean BLEU, ``delta`` their mean difference. With one run each it
    is :func:`paired_bootstrap`.
    """
    import numpy as np

    if not a_runs or len(a_runs) != len(b_runs):
        raise ValueError(f"{len(a_runs)} runs of a and {len(b_runs)} runs of b: one run of b "
                         "per run of a (paired, e.g. by seed), at least one")
    for hyps_a, hyps_b in zip(a_runs, b_runs):
        if not len(hyps_a) == len(hyps_b) == len(references):
            raise ValueError(f"{len(hyps_a)} and {len(hyps_b)} hypotheses for {len(references)} "
                             "references: one of each per sentence")
    # per-sentence n-gram counts; corpus BLEU is a function of their sums
    def stats(hyps: Sequence[str]) -> Any:
        return np.asarray(sentence_statistics(hyps, references, lowercase), dtype=np.int64)

    return _resampled([stats(h) for h in a_runs], [stats(h) for h in b_runs],
                      lambda sums: bleu_from_statistics(sums.tolist(), lowercase), samples, seed)


def _resampled(runs_a: Sequence[Any], runs_b: Sequence[Any], score: Callable[[Any], float],
               samples: int, seed: int) -> PairedBootstrap:
    """The paired bootstrap over per-sentence statistics [sentences, k] of two systems, one
    array per run (paired: ``runs_a[i]`` with ``runs_b[i]``), whose column sums ``score`` turns
    into a corpus score: the same resampled sentences for every run of both systems, and the
    mean over the runs of b's score minus a's."""
    import numpy as np

    def mean_delta(rows: Any) -> float:  # rows: the resampled sentence indices (or all)
        return sum(score(b[rows].sum(0)) - score(a[rows].sum(0))
                   for a, b in zip(runs_a, runs_b)) / len(runs_a)

    n = len(runs_a[0])
    a = sum(score(s.sum(0)) for s in runs_a) / len(runs_a)
    b = sum(score(s.sum(0)) for s in runs_b) / len(runs_b)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(samples, n))
    deltas = np.array([mean_delta(i) for i in idx])
    low, high = np.percentile(deltas, [2.5, 97.5])
    return PairedBootstrap(a, b, mean_delta(slice(None)), float(low), float(high),
                           float((deltas <= 0).mean()), samples)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str],
                lowercase: bool = False) -> float:
    """sacreBLEU's corpus chrF (character 6-grams, beta 2) of detokenized hypotheses: it gives
    partial credit to a word with a wrong ending, which BLEU counts as plainly wrong."""
    from sacrebleu.metrics import CHRF

    return CHRF(lowercase=lowercase).corpus_score(list(hypotheses), [list(references)]).score


def paired_bootstrap_chrf(hyps_a: Sequence[str], hyps_b: Sequence[str],
                          references: Sequence[str], lowercase: bool = False,
                          samples: int = 1000, seed: int = 0) -> PairedBootstrap:
    """:func:`paired_bootstrap` for chrF: the same resamplings of the sentences, summing
    sacreBLEU's per-sentence chrF statistics (the ones its own significance tests sum); the
    result's ``bleu_a`` / ``bleu_b`` hold the two chrF scores."""
    import numpy as np
    from sacrebleu.metrics import CHRF

    if not len(hyps_a) == len(hyps_b) == len(references):
        raise ValueError(f"{len(hyps_a)} and {len(hyps_b)} hypotheses for {len(references)} "
                         "references: one of each per sentence")
    chrf = CHRF(lowercase=lowercase)
    refs = [list(references)]
    stats_a = np.asarray(chrf._extract_corpus_statistics(list(hyps_a), refs), dtype=np.int64)
    stats_b = np.asarray(chrf._extract_corpus_statistics(list(hyps_b), refs), dtype=np.int64)
    return _resampled([stats_a], [stats_b],
                      lambda stats: chrf._compute_score_from_stats(stats.tolist()).score,
                      samples, seed)
