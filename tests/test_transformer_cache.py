"""The Transformer decodes from a cache of keys and values: greedy and beam search give what the
full-prefix computation gives (ids and scores), in fp32 and under bf16 autocast; the cache is
indexed by sentence on dim 1, so selecting rows of it and of the encoder's result (beam search,
dropping finished sentences) stays exact; nothing of the past is projected again."""

from __future__ import annotations

import pytest
import torch

from seq2seq_lib import ModelConfig, build_model
from seq2seq_lib import transformer as tf
from seq2seq_lib.decode import beam_search, greedy_decode
from seq2seq_lib.interface import DecoderBase, Encoded
from seq2seq_lib.models import Seq2Seq

PAD = 1
CFG = ModelConfig(arch="transformer", d_model=32, n_heads=4, ff_dim=64, n_layers=2, dropout=0.0)


class FullPrefix(DecoderBase):
    """The reference: the same decoder, run on the whole prefix at every step (its "hidden" is
    the prefix's ids [past, batch], so beam search reorders it like any other)."""

    def __init__(self, decoder: tf.TransformerDecoder):
        super().__init__()
        self.inner = decoder
        self.fc_out = decoder.fc_out

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded):
        prefix = inputs if hidden.numel() == 0 else torch.cat([hidden, inputs])
        states, _, _ = self.inner(prefix, enc.hidden[:0], enc)
        return states[-inputs.shape[0]:], prefix, None


def models(seed: int) -> tuple[Seq2Seq, Seq2Seq]:
    """A random tiny Transformer, and the same weights decoding from the full prefix."""
    torch.manual_seed(seed)
    cached = build_model(CFG, 20, 25, pad_id=PAD).eval()
    return cached, Seq2Seq(cached.encoder, FullPrefix(cached.decoder)).eval()


def sources() -> tuple[torch.Tensor, torch.Tensor]:
    """Four sources of lengths 5, 7, 1, 3, padded with PAD."""
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, 20, (7, 4), generator=g)
    lens = torch.tensor([5, 7, 1, 3])
    for i, n in enumerate(lens.tolist()):
        src[n:, i] = PAD
    return src, lens


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_len", [0, 1, 9])
def test_greedy_from_the_cache_is_greedy_from_the_full_prefix(seed, max_len):
    cached, full = models(seed)
    src, lens = sources()
    ours = greedy_decode(cached, src, lens, max_len=max_len)
    ref = greedy_decode(full, src, lens, max_len=max_len)
    assert [h.ids for h in ours] == [h.ids for h in ref]
    assert [h.score for h in ours] == pytest.approx([h.score for h in ref], abs=1e-5)
    if max_len == 9:
        assert max(len(h.ids) for h in ours) > 1  # the cache was really read


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("max_len, n_best, alpha", [(0, 1, 0.6), (1, 3, 0.6), (8, 3, 0.6),
                                                    (8, 2, 0.0)])
def test_beam_search_from_the_cache_is_beam_search_from_the_full_prefix(seed, max_len, n_best,
                                                                        alpha):
    cached, full = models(seed)
    src, lens = sources()
    ours = beam_search(cached, src, lens, beam_size=3, max_len=max_len, n_best=n_best,
                       length_penalty=alpha)
    ref = beam_search(full, src, lens, beam_size=3, max_len=max_len, n_best=n_best,
                      length_penalty=alpha)
    assert [[h.ids for h in hs] for hs in ours] == [[h.ids for h in hs] for hs in ref]
    for hs, rs in zip(ours, ref):
        assert [h.score for h in hs] == pytest.approx([h.score for h in rs], abs=1e-5)


def step_log_probs(model: Seq2Seq, src, lens, words: torch.Tensor) -> torch.Tensor:
    """Log-probabilities [steps, batch, vocab] when ``words`` [steps, batch] are read one by one."""
    enc = model.encode(src, lens)
    hidden, out = enc.hidden, []
    for t in range(words.shape[0]):
        state, hidden, _ = model.decoder(words[t : t + 1], hidden, enc)
        out.append(model.decoder.project(state[0]).float().log_softmax(-1))
    return torch.stack(out)


@torch.no_grad()
def test_bf16_autocast_the_cache_agrees_with_the_full_prefix():
    cached, full = models(4)
    src, lens = sources()
    words = torch.randint(4, 25, (8, 4), generator=torch.Generator().manual_seed(2))
    words[0] = 2
    fp32 = step_log_probs(cached, src, lens, words)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = step_log_probs(cached, src, lens, words)
        ref = step_log_probs(full, src, lens, words)
        hyps = greedy_decode(cached, src, lens, max_len=6)
        beams = beam_search(cached, src, lens, beam_size=2, max_len=6)
    assert torch.isfinite(ours).all()
    assert (ours - ref).abs().max() < 0.05  # bf16 keeps 8 bits: ~0.4 % of each value
    assert (ours - fp32).abs().max() < 0.1
    # the words bf16 greedy chose, scored in fp32: within bf16's error of fp32's own choice
    fp32_greedy = greedy_decode(cached, src, lens, max_len=6)
    for h, g in zip(hyps, fp32_greedy):
        if h.ids == g.ids:
            assert h.score == pytest.approx(g.score, abs=0.1)
    assert len(beams) == 4 and all(torch.isfinite(torch.tensor(b[0].score)) for b in beams)


@torch.no_grad()
def test_selecting_rows_of_the_cache_and_the_encoding_is_exact():
    """What beam search does (and dropping finished sentences would): rows of ``hidden`` and of
    the encoder's result selected together, mid-sentence, change no row's output."""
    cached, _ = models(5)
    src, lens = sources()
    words = torch.randint(4, 25, (5, 4), generator=torch.Generator().manual_seed(3))
    enc = cached.encode(src, lens)
    hidden, states = enc.hidden, []
    for t in range(5):
        state, hidden, _ = cached.decoder(words[t : t + 1], hidden, enc)
        states.append(state[0])
    rows = torch.tensor([3, 0, 0])
    for keep_cache in (False, True):
        enc2 = cached.encode(src, lens)
        hidden = enc2.hidden
        for t in range(3):
            _, hidden, _ = cached.decoder(words[t : t + 1], hidden, enc2)
        assert enc2.cache  # the keys and values of the encoder outputs, computed at step 1
        hidden = hidden.index_select(1, rows)
        # the cache's entries are indexed by sentence on dim 0: selected with the rest, or
        # left behind (and computed again for the rows kept)
        cache = {k: v.index_select(0, rows) for k, v in enc2.cache.items()} if keep_cache else {}
        enc2 = Encoded(enc2.outputs.index_select(1, rows), enc2.hidden.index_select(1, rows),
                       enc2.mask.index_select(0, rows), cache)
        for t in range(3, 5):
            state, hidden, _ = cached.decoder(words[t : t + 1, rows], hidden, enc2)
            torch.testing.assert_close(state[0], states[t][rows], atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_each_step_projects_only_its_new_position(monkeypatch):
    """Keys and values: the past's never again, the encoder's once per source batch."""
    cached, _ = models(6)
    src, lens = sources()
    seen: list[tuple[str, int]] = []
    project = tf._keys_values

    def spy(attn, x):
        kind = "self" if any(attn is layer.self_attn for layer in cached.decoder.layers.layers) \
            else "cross"
        seen.append((kind, x.shape[0]))
        return project(attn, x)

    monkeypatch.setattr(tf, "_keys_values", spy)
    hyps = greedy_decode(cached, src, lens, max_len=6)
    steps = max(len(h.ids) for h in hyps) + 1
    assert steps > 2
    assert [n for kind, n in seen if kind == "self"] == [1] * (2 * steps)  # 2 layers, 1 position
    assert [n for kind, n in seen if kind == "cross"] == [7, 7]  # once per layer, all sources


def test_stepwise_training_passes_gradients_through_the_cache():
    """Teacher forcing one word at a time (``fused=False``) gives the fused pass's logits and
    gradients: the cache carries the gradient of the past positions."""
    torch.manual_seed(7)
    model = build_model(CFG, 20, 25, pad_id=PAD).train()
    src, lens = sources()
    trg = torch.randint(4, 25, (6, 4), generator=torch.Generator().manual_seed(4))
    trg[0] = 2
    grads, logits = [], []
    for fused in (True, False):
        model.zero_grad()
        out = model(src, lens, trg, fused=fused)
        out.float().log_softmax(-1)[..., 5].sum().backward()
        logits.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(logits[1], logits[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)


def test_a_cache_of_the_wrong_shape_is_refused():
    cached, _ = models(0)
    src, lens = sources()
    enc = cached.encode(src, lens)
    with pytest.raises(ValueError, match="hidden must be a key/value cache"):
        cached.decoder(src[:1], torch.zeros(2, 4, 32), enc)
