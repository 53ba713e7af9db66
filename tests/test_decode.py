import math

import pytest
import torch
from countdown import WANTED, CountdownModel, decoder_batches, sources
from markov import EOS, A, MarkovModel
from reference_beam import reference_beam_search

from seq2seq_lib import beam_search, collate, greedy_decode, greedy_trace
from seq2seq_lib.vocab import Vocab


def test_batched_greedy_equals_one_at_a_time(memorized, tiny_data):
    model, *_ = memorized
    _, data = tiny_data
    examples = [data.train[i] for i in range(len(data.train))]
    b = collate(examples)
    batched = greedy_decode(model, b.src, b.src_lens)
    for ex, hyp in zip(examples, batched):
        one = collate([ex])
        single = greedy_decode(model, one.src, one.src_lens)[0]
        assert single.ids == hyp.ids
        assert abs(single.score - hyp.score) < 1e-4


def test_max_len_and_eos(memorized, tiny_data):
    model, *_ = memorized
    _, data = tiny_data
    b = collate([data.train[0], data.train[1]])
    hyps = greedy_decode(model, b.src, b.src_lens, max_len=2)
    assert all(len(h.ids) <= 2 for h in hyps)
    assert all(Vocab.eos_id not in h.ids for h in greedy_decode(model, b.src, b.src_lens))


def test_decoding_switches_dropout_off_and_restores_the_mode(tiny_data):
    """With dropout 0.5 in the model, decoding in eval() mode gives the same scores whatever the
    random state; decoding with dropout left on (the lesson's bug) does not."""
    from seq2seq_lib import ModelConfig, build_model

    _, data = tiny_data
    torch.manual_seed(0)
    model = build_model(ModelConfig(emb_dim=16, hid_dim=16, n_layers=2, dropout=0.5),
                        len(data.src_vocab), len(data.trg_vocab))
    b = collate([data.train[i] for i in range(4)])
    model.train()
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        runs.append([h.score for h in greedy_decode(model, b.src, b.src_lens, max_len=5)])
        assert model.training  # the mode is restored afterwards
    assert runs[0] == runs[1]
    noisy = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        noisy.append([h.score for h in greedy_decode(model, b.src, b.src_lens, max_len=5,
                                                     eval_mode=False)])
    assert noisy[0] != noisy[1] and noisy[0] != runs[0]
    model.eval()


def test_greedy_trace_top_k(memorized, tiny_data):
    model, *_ = memorized
    _, data = tiny_data
    b = collate([data.train[2]])
    steps = greedy_trace(model, b.src, b.src_lens, k=5)
    chosen = [s[0][0] for s in steps]
    assert chosen[-1] == Vocab.eos_id
    assert chosen[:-1] == greedy_decode(model, b.src, b.src_lens)[0].ids
    for step in steps:
        probs = [p for _, p in step]
        assert len(step) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert all(0 < p <= 1 for step in steps for _, p in step)


ONE_SOURCE = (torch.tensor([[Vocab.sos_id], [7], [Vocab.eos_id]]), torch.tensor([3]))


def test_an_output_cut_at_max_len_is_scored_as_ended_with_eos():
    """Greedy keeps picking A; at max_len 2 the output is cut. Its score covers the two words
    kept and the <eos> that ends it (as in beam search), not the third A that was dropped."""
    model = MarkovModel({Vocab.sos_id: {A: 0.9, EOS: 0.1}, A: {A: 0.8, EOS: 0.2}})
    hyp = greedy_decode(model, *ONE_SOURCE, max_len=2)[0]
    assert hyp.ids == [A, A]
    assert hyp.score == pytest.approx(math.log(0.9 * 0.8 * 0.2))
    beam = beam_search(model, *ONE_SOURCE, beam_size=1, max_len=2, length_penalty=0.0)[0][0]
    assert beam.ids == hyp.ids and beam.score == pytest.approx(hyp.score)
    # an output that ends by itself before the limit keeps its own <eos> probability
    short = greedy_decode(MarkovModel({Vocab.sos_id: {A: 0.9, EOS: 0.1}}), *ONE_SOURCE)[0]
    assert short.ids == [A] and short.score == pytest.approx(math.log(0.9))


def test_a_negative_max_len_is_refused():
    model = MarkovModel({})
    with pytest.raises(ValueError, match="max_len must be >= 0, got -1"):
        greedy_decode(model, *ONE_SOURCE, max_len=-1)
    with pytest.raises(ValueError, match="max_len must be >= 0, got -1"):
        beam_search(model, *ONE_SOURCE, max_len=-1)


def test_finished_sentences_leave_the_batch_and_change_nothing():
    """Sentences that finish at very different steps (one cut at max_len) leave the decoder's
    batch as they finish; the outputs are those of the reference beam search with beam 1."""
    model = CountdownModel()
    seen = {}
    for wanted, max_len in ((WANTED, 14), ((4,), 6), ((20,), 6)):  # and batches of one
        src, src_lens = sources(wanted)
        with decoder_batches(model) as sizes:
            hyps = greedy_decode(model, src, src_lens, max_len)
        ref = [h[0] for h in reference_beam_search(model, src, src_lens, 1, max_len, 0.0)]
        assert [h.ids for h in hyps] == [h.ids for h in ref]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in ref], abs=1e-5)
        for got, want in zip(hyps, ref):
            torch.testing.assert_close(got.attention, want.attention, rtol=0, atol=1e-6)
        assert [len(h.ids) for h in hyps] == [min(n, max_len) for n in wanted]
        seen[wanted] = sizes
    many = seen[WANTED]
    assert many[0] == len(WANTED) and many == sorted(many, reverse=True) and many[-1] == 1
    assert len(many) == 15 and len(set(many)) >= 5  # the cut one ran alone to the end
    assert seen[(4,)] == [1] * 5 and seen[(20,)] == [1] * 7
