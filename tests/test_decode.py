import torch

from seq2seq_lib import collate, greedy_decode, greedy_trace
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
