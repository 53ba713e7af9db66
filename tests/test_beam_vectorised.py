"""The vectorised beam search against the reference (the former loop over candidates, kept in
``reference_beam.py``): ids equal, scores within 1e-5, same n-best and attention, on random
small models of every architecture."""

from __future__ import annotations

import pytest
import torch
from countdown import WANTED, CountdownModel, RowFirstModel, decoder_batches, sources
from reference_beam import reference_beam_search
from test_precision import Float64Guard

from seq2seq_lib import ModelConfig, beam_search, build_model, collate
from seq2seq_lib.vocab import Vocab

V_SRC, V_TRG = 20, 12
# name: (attention, bidirectional, n_layers, seed, output scale, <eos> bias); the last three
# chosen so that with max_len 10 the outputs have many lengths, and some are cut
MODELS = {
    "gru": ("none", False, 1, 3, 6.0, 1.0),
    "gru-bi-2": ("none", True, 2, 0, 4.0, 1.0),
    "bahdanau": ("bahdanau", False, 1, 1, 4.0, 1.0),
    "bahdanau-bi-2": ("bahdanau", True, 2, 0, 4.0, 1.0),
    "dot-2": ("dot", False, 2, 2, 4.0, 0.0),
    "general-bi": ("general", True, 1, 0, 4.0, 0.0),
}


def random_model(attention, bidirectional, n_layers, seed=0, scale=4.0, eos_bias=1.0):
    """An untrained model with sharpened outputs, so that sentences end at different steps."""
    torch.manual_seed(seed)
    cfg = ModelConfig(emb_dim=8, hid_dim=16, n_layers=n_layers, dropout=0.0,
                      bidirectional=bidirectional, attention=attention)
    model = build_model(cfg, V_SRC, V_TRG).eval()
    with torch.no_grad():
        model.decoder.fc_out.weight.mul_(scale)
        model.decoder.fc_out.bias[Vocab.eos_id] += eos_bias
    return model


def random_transformer(seed=1, eos_bias=1.5):
    """An untrained two-layer Transformer whose outputs end at different steps."""
    torch.manual_seed(seed)
    cfg = ModelConfig(arch="transformer", d_model=16, n_heads=2, ff_dim=32, n_layers=2,
                      dropout=0.0)
    model = build_model(cfg, V_SRC, V_TRG).eval()
    with torch.no_grad():
        model.decoder.fc_out.bias[Vocab.eos_id] += eos_bias
    return model


def random_batch(seed, lens=(6, 2, 4, 9)):
    """Sentences of different lengths (the shorter ones padded) of random word ids."""
    gen = torch.Generator().manual_seed(seed)
    examples = [(torch.tensor([Vocab.sos_id, *torch.randint(4, V_SRC, (n,), generator=gen).tolist(),
                               Vocab.eos_id]), torch.tensor([Vocab.sos_id])) for n in lens]
    b = collate(examples)
    return b.src, b.src_lens


def assert_same(new, ref):
    """Same sentences, same order, scores within 1e-5, attention within 1e-6."""
    assert len(new) == len(ref)
    for got, want in zip(new, ref):
        assert [h.ids for h in got] == [h.ids for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=0, abs=1e-5)
        for g, w in zip(got, want):
            if w.attention is None:
                assert g.attention is None
            else:
                assert g.attention.dtype == w.attention.dtype
                # not bit for bit: dropping finished sentences changes the decoder's batch
                # size, and with it the order of the sums inside a matrix product
                torch.testing.assert_close(g.attention, w.attention, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_vectorised_beam_search_equals_the_reference(name):
    model = random_model(*MODELS[name])
    src, src_lens = random_batch(seed=len(name))
    lengths = set()
    for max_len in (0, 1, 10):
        for beam_size in range(1, 6):
            # both length penalties for beam 5, one of them (alternating) for the others
            for alpha in (0.0, 0.6) if beam_size == 5 else ((0.0, 0.6)[beam_size % 2],):
                ref = reference_beam_search(model, src, src_lens, beam_size, max_len, alpha,
                                            n_best=1 if max_len == 0 else beam_size)
                # n_best only cuts the ranked list: every value once, the extremes everywhere
                every = max_len == 10 and alpha > 0
                n_bests = range(1, beam_size + 1) if every else {1, len(ref[0])}
                for n_best in n_bests:
                    new = beam_search(model, src, src_lens, beam_size, max_len, alpha, n_best)
                    assert_same(new, [hyps[:n_best] for hyps in ref])
                if max_len == 10:
                    lengths.update(len(h.ids) for hyps in ref for h in hyps)
    assert len(lengths) >= 4 and 10 in lengths  # outputs of many lengths, cut ones too


def test_a_vocabulary_with_impossible_words_leaves_dead_slots_as_the_reference_does():
    """A model whose table makes most words impossible (-inf): fewer live prefixes than beams."""
    from markov import EOS, A, B, MarkovModel

    probs = {Vocab.sos_id: {A: 0.5, EOS: 0.5}, A: {B: 0.7, EOS: 0.3}, B: {A: 0.4, EOS: 0.6}}
    model = MarkovModel(probs)
    src, src_lens = random_batch(seed=3, lens=(3, 1))
    for beam_size in (1, 3, 5):
        for max_len in (1, 4):
            ref = reference_beam_search(model, src, src_lens, beam_size, max_len, 0.6, 1)
            assert_same(beam_search(model, src, src_lens, beam_size, max_len, 0.6, 1), ref)


def test_bf16_autocast_on_the_cpu_decodes_like_fp32_and_makes_no_float64(memorized, tiny_data):
    """On a confident model (the memorized one) bf16 autocast gives fp32's sentences, and the
    vectorised search gives the reference's under autocast too."""
    model, *_ = memorized
    data = tiny_data[1]
    b = collate([data.train[i] for i in range(len(data.train))])
    fp32 = beam_search(model, b.src, b.src_lens, beam_size=4, n_best=2)
    with Float64Guard(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = beam_search(model, b.src, b.src_lens, beam_size=4, n_best=2)
        ref = reference_beam_search(model, b.src, b.src_lens, beam_size=4, n_best=2)
    assert_same(bf16, ref)
    assert [h[0].ids for h in bf16] == [h[0].ids for h in fp32]


def test_bf16_autocast_with_attention_returns_valid_hypotheses():
    model = random_model(*MODELS["bahdanau-bi-2"])
    src, src_lens = random_batch(seed=5)
    with Float64Guard(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = beam_search(model, src, src_lens, beam_size=3, max_len=10, n_best=3)
        ref = reference_beam_search(model, src, src_lens, beam_size=3, max_len=10, n_best=3)
    assert_same(out, ref)
    for hyps, n in zip(out, src_lens.tolist()):
        assert len(hyps) == 3
        for h in hyps:
            assert len(h.ids) <= 10 and Vocab.eos_id not in h.ids
            assert h.attention.dtype == torch.float32 and h.attention.shape == (len(h.ids) + 1, n)
            torch.testing.assert_close(h.attention.sum(-1), torch.ones(len(h.ids) + 1),
                                       atol=2e-2, rtol=0)


@pytest.mark.parametrize("beam_size", [1, 2, 5])
def test_done_sentences_leave_the_batch_and_change_nothing(beam_size):
    model = CountdownModel()
    src, src_lens = sources(WANTED)
    with decoder_batches(model) as sizes:
        new = beam_search(model, src, src_lens, beam_size, 14, 0.6, beam_size)
    assert_same(new, reference_beam_search(model, src, src_lens, beam_size, 14, 0.6, beam_size))
    assert sizes[0] == len(WANTED)  # step 0 decodes each sentence once, for all its beams
    later = sizes[1:]
    assert len(sizes) == 15 and later[-1] == beam_size  # the cut one ran alone to the end
    assert later == sorted(later, reverse=True) and all(n % beam_size == 0 for n in later)
    assert len(set(later)) >= 5  # sentences left at many different steps
    assert {len(h.ids) for hyps in new for h in hyps} >= {0, 1, 6, 9, 12, 14}


@pytest.mark.parametrize("wanted", [4, 20])
def test_a_batch_of_one_sentence_equals_the_reference(wanted):
    model = CountdownModel()
    src, src_lens = sources((wanted,))
    for beam_size in (1, 3):
        with decoder_batches(model) as sizes:
            new = beam_search(model, src, src_lens, beam_size, 6, 0.6, beam_size)
        assert_same(new, reference_beam_search(model, src, src_lens, beam_size, 6, 0.6,
                                               beam_size))
        assert sizes == [1] + [beam_size] * (len(sizes) - 1)
        assert len(sizes) == 7 if wanted > 6 else len(sizes) <= 7


def test_a_decoder_with_its_own_state_layout_is_reordered_by_its_reorder():
    """A decoder whose state is no tensor with the row on dim 1 defines ``reorder``: beam
    search then goes through it for every reordering and every dropped sentence, and decodes
    as with the plain layout."""
    src, src_lens = sources(WANTED)
    model = RowFirstModel()
    for beam_size in (1, 4):
        model.decoder.reorders = 0
        got = beam_search(model, src, src_lens, beam_size, 14, 0.6, beam_size)
        assert_same(got, beam_search(CountdownModel(), src, src_lens, beam_size, 14, 0.6,
                                     beam_size))
        assert model.decoder.reorders == 14  # once per step but the last


def test_the_transformer_equals_the_reference_as_sentences_leave():
    model = random_transformer()
    src, src_lens = random_batch(seed=1, lens=(1, 9, 2, 7, 4, 11, 3, 6))
    for beam_size, alpha in ((2, 0.6), (5, 0.0)):
        with decoder_batches(model) as sizes:
            new = beam_search(model, src, src_lens, beam_size, 12, alpha, beam_size)
        assert_same(new, reference_beam_search(model, src, src_lens, beam_size, 12, alpha,
                                               beam_size))
        assert len(set(sizes[1:])) >= 3  # sentences left the batch at two steps at least
