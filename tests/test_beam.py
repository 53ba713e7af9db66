import itertools
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from markov import EOS, A, B, MarkovModel

from seq2seq_lib import (
    Translator,
    beam_search,
    collate,
    gnmt_length_penalty,
    greedy_decode,
)
from seq2seq_lib.cli import main
from seq2seq_lib.vocab import Vocab

# greedy takes A (0.6), after which the best it can do is <eos> (0.35): 0.21 in all;
# beam search keeps B (0.4) too, and B <eos> has probability 0.4 * 0.95 = 0.38
TRAP = {Vocab.sos_id: {A: 0.6, B: 0.4}, A: {EOS: 0.35, A: 0.33, B: 0.32}, B: {EOS: 0.95, A: 0.05}}
ONE_SOURCE = (torch.tensor([[Vocab.sos_id], [7], [EOS]]), torch.tensor([3]))


def test_beam_search_finds_a_more_probable_sentence_than_greedy():
    model = MarkovModel(TRAP)
    greedy = greedy_decode(model, *ONE_SOURCE)[0]
    assert greedy.ids == [A] and greedy.score == pytest.approx(math.log(0.6 * 0.35))
    best = beam_search(model, *ONE_SOURCE, beam_size=2, length_penalty=0.0)[0][0]
    assert best.ids == [B] and best.score == pytest.approx(math.log(0.4 * 0.95))
    assert best.score > greedy.score
    assert beam_search(model, *ONE_SOURCE, beam_size=1)[0][0].ids == greedy.ids


def all_sentences(probs, max_len):
    """Every output of at most ``max_len`` words with its log-probability, by brute force."""
    words = [A, B]
    out = []
    for n in range(max_len + 1):
        for seq in itertools.product(words, repeat=n):
            prev, logp = Vocab.sos_id, 0.0
            for w in (*seq, EOS):
                p = probs[prev].get(w, 0.0)
                logp += math.log(p) if p > 0 else float("-inf")
                prev = w
            out.append((list(seq), logp))
    return out


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_n_best_is_the_exact_ranking_when_the_beam_is_wide_enough(alpha):
    probs = {Vocab.sos_id: {A: 0.5, B: 0.3, EOS: 0.2}, A: {A: 0.2, B: 0.5, EOS: 0.3},
             B: {A: 0.45, B: 0.15, EOS: 0.4}}
    max_len = 3
    exact = sorted(((ids, lp / gnmt_length_penalty(len(ids) + 1, alpha))
                    for ids, lp in all_sentences(probs, max_len)), key=lambda x: -x[1])
    # 2 live words, so at most 8 prefixes and 15 outputs: 16 beams keep every one
    hyps = beam_search(MarkovModel(probs), *ONE_SOURCE, beam_size=16, max_len=max_len,
                       length_penalty=alpha, n_best=6)[0]
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)
    assert [h.ids for h in hyps] == [ids for ids, _ in exact[:6]]
    assert scores == pytest.approx([s for _, s in exact[:6]])


def test_length_penalty_favours_longer_outputs():
    probs = {Vocab.sos_id: {A: 0.5, EOS: 0.5}, A: {A: 0.5, EOS: 0.5}}
    plain = beam_search(MarkovModel(probs), *ONE_SOURCE, beam_size=3, length_penalty=0.0)[0][0]
    assert plain.ids == []  # every extra word costs probability
    assert gnmt_length_penalty(1, 0.0) == 1.0 and gnmt_length_penalty(7, 1.0) == 2.0
    longer = beam_search(MarkovModel(probs), *ONE_SOURCE, beam_size=3, max_len=4,
                         length_penalty=5.0)[0][0]
    assert len(longer.ids) > 0


def test_max_len_zero_gives_the_empty_sentence_and_refuses_a_longer_n_best():
    """With no room for a word the empty sentence is the only output: n_best 1 returns it,
    a larger n_best is refused rather than silently answered with fewer hypotheses."""
    model = MarkovModel({Vocab.sos_id: {A: 0.6, B: 0.3, EOS: 0.1}})
    [[hyp]] = beam_search(model, *ONE_SOURCE, beam_size=3, max_len=0, length_penalty=0.6)
    assert hyp.ids == [] and hyp.score == pytest.approx(math.log(0.1) / gnmt_length_penalty(1, 0.6))
    with pytest.raises(ValueError, match="n_best must be 1 when max_len is 0"):
        beam_search(model, *ONE_SOURCE, beam_size=3, max_len=0, n_best=3)


def test_bad_beam_arguments_are_refused():
    model = MarkovModel(TRAP)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, *ONE_SOURCE, beam_size=0)
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, *ONE_SOURCE, beam_size=2, n_best=3)


def full_batch(data):
    return collate([data.train[i] for i in range(len(data.train))])


def test_beam_size_one_equals_greedy(memorized, tiny_data):
    model, *_ = memorized
    b = full_batch(tiny_data[1])
    for max_len in (50, 3):  # also when the length limit cuts sentences short
        greedy = greedy_decode(model, b.src, b.src_lens, max_len=max_len)
        beam = beam_search(model, b.src, b.src_lens, beam_size=1, max_len=max_len,
                           length_penalty=0.0)
        assert [h.ids for h in greedy] == [h[0].ids for h in beam]
        assert [h.score for h in greedy] == pytest.approx([h[0].score for h in beam], abs=1e-5)
    assert any(len(h.ids) == 3 for h in greedy)  # some outputs were cut


def test_batched_beam_search_equals_one_sentence_at_a_time(memorized, tiny_data):
    model, *_ = memorized
    data = tiny_data[1]
    batched = beam_search(model, *astuple(full_batch(data)), beam_size=3, n_best=3)
    for i, hyps in enumerate(batched):
        one = collate([data.train[i]])
        alone = beam_search(model, one.src, one.src_lens, beam_size=3, n_best=3)[0]
        assert [h.ids for h in alone] == [h.ids for h in hyps]
        assert [h.score for h in alone] == pytest.approx([h.score for h in hyps], abs=1e-4)
        assert len({tuple(h.ids) for h in hyps}) == 3  # three different sentences
        assert hyps[0].score >= hyps[1].score >= hyps[2].score


def astuple(batch):
    return batch.src, batch.src_lens


def test_beam_search_returns_attention_of_the_right_shape(tiny_data):
    from conftest import train_tiny

    from seq2seq_lib import ModelConfig

    data_cfg, data = tiny_data
    cfg = ModelConfig(emb_dim=16, hid_dim=16, n_layers=1, dropout=0.0, attention="general")
    model, *_ = train_tiny(data_cfg, data, epochs=2, model_cfg=cfg)
    b = full_batch(data)
    greedy = greedy_decode(model, b.src, b.src_lens, max_len=6)
    beam = beam_search(model, b.src, b.src_lens, beam_size=1, max_len=6, length_penalty=0.0)
    for i, (g, hyps) in enumerate(zip(greedy, beam)):
        n = int(b.src_lens[i])
        for h in hyps:
            assert h.attention.shape == (len(h.ids) + 1, n)
            torch.testing.assert_close(h.attention.sum(-1), torch.ones(len(h.ids) + 1))
        assert g.ids == hyps[0].ids
        torch.testing.assert_close(g.attention, hyps[0].attention)
    for hyps in beam_search(model, b.src, b.src_lens, beam_size=3, max_len=6, n_best=2):
        assert all(h.attention.shape[0] == len(h.ids) + 1 for h in hyps)


@pytest.fixture(scope="module")
def translator(memorized, tiny_data):
    model, _, info = memorized
    data_cfg, data = tiny_data
    return Translator(model, data.src_vocab, data.trg_vocab, data_cfg, info.model_cfg)


def test_translator_beam_options(translator, tiny_corpus):
    assert translator.translate("他是老师。", beam_size=5) == "He is a teacher."
    assert translator.translate("他是老师。", beam_size=5, length_penalty=0.0) == "He is a teacher."
    zh = [z for z, _ in tiny_corpus.pairs]
    en = [e for _, e in tiny_corpus.pairs]
    assert translator.translate_batch(zh, beam_size=3, batch_size=7) == en
    score, _ = translator.bleu(tiny_corpus.pairs, beam_size=3)
    assert score.score > 95
    n_best = translator.translate_n_best("他是老师。", n=3)
    assert n_best[0][0] == "He is a teacher." and len(n_best) == 3
    assert [s for _, s in n_best] == sorted((s for _, s in n_best), reverse=True)
    with pytest.raises(ValueError, match="no attention"):
        translator.attention_map("他是老师。")


def test_cli_translate_and_evaluate_with_a_beam(translator, tmp_path, capsys):
    # a checkpoint whose corpus has a test split (the fixture uses every pair for training)
    data_cfg = replace(translator.data_cfg, test_frac=0.25)
    path = str(Translator(translator.model, translator.src_vocab, translator.trg_vocab, data_cfg,
                          translator.model_cfg).save(tmp_path / "m.pt"))
    assert main(["translate", "--checkpoint", path, "--beam", "4", "他是老师。", "请坐。"]) == 0
    assert capsys.readouterr().out.splitlines() == ["He is a teacher.", "Please sit down."]
    assert main(["evaluate", "--checkpoint", path, "--beam", "3", "--length-penalty", "1",
                 "--examples", "0"]) == 0
    assert "beam 3, length penalty 1" in capsys.readouterr().out
    assert main(["translate", "--checkpoint", path, "--beam", "0", "他是老师。"]) == 2
    assert "--beam must be at least 1" in capsys.readouterr().err


def test_cli_train_reports_with_a_beam(tmp_path, capsys):
    data = Path(__file__).parent / "data"
    out = tmp_path / "m.pt"
    assert main(["train", "--src", str(data / "tiny.zh"), "--trg", str(data / "tiny.en"),
                 "--epochs", "1", "--emb-dim", "8", "--hid-dim", "8", "--n-layers", "1",
                 "--attention", "dot", "--min-freq", "1", "--quiet", "--beam", "2",
                 "--out", str(out)]) == 0
    assert "beam 2, length penalty 0.6" in capsys.readouterr().out and out.is_file()
