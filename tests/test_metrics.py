import math

import pytest

from seq2seq_lib import bleu_signature, corpus_bleu, perplexity
from seq2seq_lib.metrics import bleu_by_length, length_bin_labels


def test_bleu_matches_sacrebleus_documented_example():
    # the two-reference example of sacrebleu's README, documented as BLEU = 48.53
    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
            ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
    assert corpus_bleu(hyps, refs).score == pytest.approx(48.53, abs=0.005)


def test_bleu_perfect_and_lowercase():
    hyp, ref = "the cat sat on the mat", "The Cat sat on the mat"
    assert corpus_bleu([ref], [ref]).score == pytest.approx(100)
    assert corpus_bleu([hyp], [ref]).score < 100
    assert corpus_bleu([hyp], [ref], lowercase=True).score == pytest.approx(100)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])


def test_signature_names_tokenizer_and_case():
    sig = bleu_signature(lowercase=True)
    assert "tok:13a" in sig and "case:lc" in sig


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(20)) == pytest.approx(20)
    assert perplexity(1e6) == float("inf")


def test_length_bin_labels():
    assert length_bin_labels((5, 8, 12)) == ["≤5", "6–8", "9–12", ">12"]
    assert length_bin_labels((3, 4)) == ["≤3", "4", ">4"]
    for bad in [(), (5, 5), (8, 5)]:
        with pytest.raises(ValueError, match="increasing"):
            length_bin_labels(bad)


def test_bleu_by_length_scores_each_bin_on_its_own_sentences():
    refs = ["the cat sat on the mat", "a dog ran in the park", "he reads a long book today",
            "she likes green tea very much", "we walked home after the long game"]
    hyps = [refs[0], refs[1], "he reads a short book now", "tea", refs[4]]
    lengths = [3, 5, 7, 9, 20]  # bins ≤5: 0, 1 · 6–8: 2 · 9–12: 3 · >12: 4
    bins = bleu_by_length(hyps, refs, lengths)
    assert [(b.label, b.n) for b in bins] == [("≤5", 2), ("6–8", 1), ("9–12", 1), (">12", 1)]
    assert bins[0].bleu == pytest.approx(100) and bins[3].bleu == pytest.approx(100)
    assert bins[1].bleu == pytest.approx(corpus_bleu([hyps[2]], [refs[2]]).score)
    assert 0 < bins[1].bleu < 100 and bins[2].bleu < bins[1].bleu


def test_bleu_by_length_empty_bins_and_lowercase():
    bins = bleu_by_length(["The Cat sat on the mat"], ["the cat sat on the mat"], [4],
                          edges=(5, 10), lowercase=True)
    assert [b.n for b in bins] == [1, 0, 0]
    assert bins[0].bleu == pytest.approx(100)
    assert math.isnan(bins[1].bleu) and math.isnan(bins[2].bleu)
    with pytest.raises(ValueError, match="one of each per sentence"):
        bleu_by_length(["a"], ["a"], [1, 2])


def test_paired_bootstrap_interval():
    from seq2seq_lib.metrics import paired_bootstrap

    refs = [f"the cat number {i} sat on the mat ." for i in range(60)]
    good = list(refs)
    bad = [f"a dog {i} stood near it" for i in range(60)]
    same = paired_bootstrap(good, good, refs, samples=200)
    assert same.delta == 0 and same.low == same.high == 0 and same.p_not_better == 1.0
    better = paired_bootstrap(bad, good, refs, samples=200)
    assert better.bleu_b == pytest.approx(corpus_bleu(good, refs).score)
    assert better.bleu_a == pytest.approx(corpus_bleu(bad, refs).score)
    assert 0 < better.low <= better.delta <= better.high and better.p_not_better == 0.0
    # half the sentences better, half worse: the interval straddles zero
    mixed = good[:30] + bad[30:]
    other = bad[:30] + good[30:]
    tie = paired_bootstrap(mixed, other, refs, samples=300)
    assert tie.low < 0 < tie.high
    assert str(tie) == f"{tie.delta:+.2f} [{tie.low:+.2f}, {tie.high:+.2f}]"
    with pytest.raises(ValueError, match="one of each"):
        paired_bootstrap(good, good[:-1], refs)


def test_sentence_statistics_sum_to_sacrebleus_corpus_statistics():
    """The bootstrap's per-sentence counts come from sacreBLEU's public scores; their sums are
    the corpus score's counts, and scoring the sums gives the corpus BLEU, smoothing included."""
    from seq2seq_lib.metrics import bleu_from_statistics, sentence_statistics

    refs = ["The cat is on the mat.", "He is a teacher.", "We went to the library yesterday.",
            "Don't forget to call your Mother."]
    hyps = ["the cat sat on a mat .", "He is teacher.", "We go to library.", "Do not forget mother"]
    for lowercase in (False, True):
        rows = sentence_statistics(hyps, refs, lowercase)
        sums = [sum(col) for col in zip(*rows)]
        corpus = corpus_bleu(hyps, refs, lowercase)
        assert sums == [corpus.sys_len, corpus.ref_len, *corpus.counts, *corpus.totals]
        assert min(corpus.counts) == 0  # a missing 4-gram: sacreBLEU's exp smoothing is used
        assert bleu_from_statistics(sums, lowercase) == corpus.score


def _bootstrap_by_definition(a_runs, b_runs, refs, samples, seed):
    """The mean-over-runs paired bootstrap spelt out with corpus_bleu on resampled sentences."""
    import numpy as np

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(refs), size=(samples, len(refs)))

    def mean_delta(rows):
        return sum(corpus_bleu([b[i] for i in rows], [refs[i] for i in rows]).score
                   - corpus_bleu([a[i] for i in rows], [refs[i] for i in rows]).score
                   for a, b in zip(a_runs, b_runs)) / len(a_runs)

    deltas = np.array([mean_delta(rows) for rows in idx])
    return mean_delta(range(len(refs))), *np.percentile(deltas, [2.5, 97.5])


def test_paired_bootstrap_mean_is_the_paired_bootstrap_for_one_run_and_the_definition():
    from seq2seq_lib.metrics import paired_bootstrap, paired_bootstrap_mean

    refs = [f"the cat number {i} sat on the mat ." for i in range(40)]
    a = [f"a cat {i} sat on a mat" if i % 3 else refs[i] for i in range(40)]
    b = [refs[i] if i % 2 else f"the dog {i} sat on the mat ." for i in range(40)]
    one = paired_bootstrap_mean([a], [b], refs, samples=100, seed=3)
    assert one == paired_bootstrap(a, b, refs, samples=100, seed=3)
    delta, low, high = _bootstrap_by_definition([a], [b], refs, 100, 3)
    assert (one.delta, one.low, one.high) == pytest.approx((delta, low, high))
    a2 = [f"the cat {i} on the mat ." for i in range(40)]
    two = paired_bootstrap_mean([a, a2], [b, a], refs, samples=100, seed=3)
    delta, low, high = _bootstrap_by_definition([a, a2], [b, a], refs, 100, 3)
    assert (two.delta, two.low, two.high) == pytest.approx((delta, low, high))
    assert two.bleu_a == pytest.approx((corpus_bleu(a, refs).score
                                        + corpus_bleu(a2, refs).score) / 2)
    assert two.bleu_b == pytest.approx((corpus_bleu(b, refs).score
                                        + corpus_bleu(a, refs).score) / 2)


def test_paired_bootstrap_mean_shifts_and_straddles_as_the_runs_say():
    from seq2seq_lib.metrics import paired_bootstrap, paired_bootstrap_mean

    refs = [f"the cat number {i} sat on the mat ." for i in range(60)]
    good = list(refs)
    bad = [f"a dog {i} stood near it" if i % 2 else refs[i] for i in range(60)]
    better = paired_bootstrap(bad, good, refs, samples=200)
    assert better.low > 0
    # a second seed at which the two systems are the same: every resampling's mean difference
    # is half of the first seed's, so the estimate and both ends of the interval halve
    halved = paired_bootstrap_mean([bad, good], [good, good], refs, samples=200)
    assert halved.delta == pytest.approx(better.delta / 2)
    assert (halved.low, halved.high) == pytest.approx((better.low / 2, better.high / 2))
    assert halved.bleu_a == pytest.approx((better.bleu_a + 100) / 2)
    # a second seed at which b is as much worse, on the other sentences: the mean difference is
    # about 0, and the interval reaches both sides of it (each draw favours one seed or the other)
    bad_even = [refs[i] if i % 2 else f"a dog {i} stood near it" for i in range(60)]
    opposite = paired_bootstrap_mean([bad, good], [good, bad_even], refs, samples=200)
    assert abs(opposite.delta) < better.delta / 10
    assert opposite.low < 0 < opposite.high and 0.1 < opposite.p_not_better < 0.9
    with pytest.raises(ValueError, match="one run of b per run of a"):
        paired_bootstrap_mean([bad, good], [good], refs)
    with pytest.raises(ValueError, match="at least one"):
        paired_bootstrap_mean([], [], refs)
    with pytest.raises(ValueError, match="one of each per sentence"):
        paired_bootstrap_mean([good], [good[:-1]], refs)
