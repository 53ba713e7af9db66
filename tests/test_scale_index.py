"""The flat non-pad index of a batch (``Batch.trg_index``), found on the CPU by ``collate`` and
by the cache's ``__getitems__``, which the loss and the library's model use instead of turning
a mask into positions on the device: the same loss and gradients as with the mask."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import ATTN_MODEL, TINY_MODEL

from seq2seq_lib import ModelConfig, batch_loss, build_model, collate
from seq2seq_lib.batching import Batch
from seq2seq_lib.cache import build_cache, load_cache
from seq2seq_lib.config import DataConfig
from seq2seq_lib.data import read_parallel
from seq2seq_lib.exercises.nb04_model import DecoderAnswer, EncoderAnswer, Seq2SeqAnswer

DATA = Path(__file__).parent / "data"
TINY_TF = ModelConfig(arch="transformer", d_model=32, n_heads=4, ff_dim=64, n_layers=2,
                      dropout=0.0)
V_SRC, V_TRG = 30, 40


def sentence(n: int, start: int = 4) -> torch.Tensor:
    return torch.tensor([2, *[(start + i) % 36 + 4 for i in range(n)], 3])


def a_batch() -> Batch:
    return collate([(sentence(5), sentence(6, 10)), (sentence(3), sentence(2, 20)),
                    (sentence(7), sentence(9, 5)), (sentence(1), sentence(1, 7))])


def mask_loss(model: torch.nn.Module, b: Batch) -> torch.Tensor:
    """The loss as it was computed before the index: by the mask, on the device."""
    logits = model(b.src, b.src_lens, b.trg, 1.0)  # [trg_len - 1, batch, V]
    mask = b.trg[1:] != 1
    return torch.nn.functional.cross_entropy(logits[mask], b.trg[1:][mask])


def test_collate_finds_the_positions_of_the_real_target_words():
    b = a_batch()
    flat = (b.trg[1:] != 1).flatten()
    assert b.trg_index.dtype == torch.int64
    assert b.trg_index.tolist() == torch.nonzero(flat).flatten().tolist()
    assert len(b.trg_index) == b.n_tokens == b.loss_tokens()
    moved = b.to("cpu")
    assert torch.equal(moved.trg_index, b.trg_index) and moved.pad_id == b.pad_id
    # a batch built by hand finds them when asked, and another pad id is not taken from collate
    assert torch.equal(Batch(b.src, b.src_lens, b.trg).target_index(), b.trg_index)
    other = b.target_index(pad_id=3)  # <eos> as the pad id: found anew from trg
    assert other.tolist() == torch.nonzero((b.trg[1:] != 3).flatten()).flatten().tolist()


def test_the_cache_gives_the_index_collate_gives(tmp_path):
    pairs = read_parallel(DATA / "tiny.zh", DATA / "tiny.en").pairs
    cfg = DataConfig(zh_tokens="char", min_freq=1, valid_frac=0.0, test_frac=0.0)
    data = load_cache(build_cache(pairs, tmp_path / "c", cfg, progress=False).path)
    indices = [3, 0, 7, 12, 5]
    cached = data.train.__getitems__(indices)
    by_collate = collate([data.train[i] for i in indices])
    assert torch.equal(cached.trg, by_collate.trg)
    assert torch.equal(cached.trg_index, by_collate.trg_index)


@pytest.mark.parametrize("cfg", [TINY_MODEL, ATTN_MODEL, TINY_TF],
                         ids=["gru", "attention", "transformer"])
def test_the_loss_and_gradients_by_index_are_those_by_mask(cfg):
    torch.manual_seed(0)
    model = build_model(cfg, V_SRC, V_TRG)
    b = a_batch()
    ref = mask_loss(model, b)
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    loss, n = batch_loss(model, b)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert n == b.n_tokens
    torch.testing.assert_close(loss, ref, rtol=0, atol=1e-6)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-6)
    # the model's rows by index are its rows by mask
    by_mask = model(b.src, b.src_lens, b.trg, 1.0, pad_id=1)
    by_index = model(b.src, b.src_lens, b.trg, 1.0, pad_id=1, trg_index=b.trg_index)
    torch.testing.assert_close(by_index, by_mask, rtol=0, atol=0)


def test_the_loss_scores_the_rows_the_index_names():
    torch.manual_seed(0)
    model = build_model(TINY_MODEL, V_SRC, V_TRG)
    b = a_batch()
    some = b.trg_index[::2]  # every other real word: what the model and the loss must both take
    loss, _ = batch_loss(model, Batch(b.src, b.src_lens, b.trg, len(some), some))
    logits = model(b.src, b.src_lens, b.trg, 1.0).flatten(0, 1)[some]
    ref = torch.nn.functional.cross_entropy(logits, b.trg[1:].flatten()[some])
    torch.testing.assert_close(loss, ref, rtol=0, atol=1e-6)


def test_a_model_without_the_index_gets_the_pad_id_only():
    torch.manual_seed(0)
    model = Seq2SeqAnswer(EncoderAnswer(V_SRC, 8, 12, 1, 0.0), DecoderAnswer(V_TRG, 8, 12, 1, 0.0))
    b = a_batch()
    loss, _ = batch_loss(model, b)  # it would refuse trg_index=
    torch.testing.assert_close(loss, mask_loss(model, b), rtol=0, atol=1e-6)
