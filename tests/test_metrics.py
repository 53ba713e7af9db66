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
