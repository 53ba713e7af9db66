import math

import pytest

from seq2seq_lib import bleu_signature, corpus_bleu, perplexity


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
