"""Additive attention computed a chunk of target steps at a time: the same scores and gradients
as the one-piece computation, with its largest tensor bounded by ``max_chunk_elements``."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from seq2seq_lib import AdditiveAttention, ModelConfig, build_model, collate

BATCH, STEPS, SRC_LEN, Q_DIM, K_DIM, A_DIM = 3, 7, 5, 4, 6, 8
PER_STEP = BATCH * SRC_LEN * A_DIM  # numbers in one target step's sum: 120


class LargestTensor(TorchDispatchMode):
    """The most elements of any tensor an operator returned (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


def one_piece_scores(att: AdditiveAttention, query, keys):
    """The unchunked computation: [batch, steps, src_len, attn_dim] in one tensor."""
    q = att.w_query(query).unsqueeze(2)  # [batch, steps, 1, attn_dim]
    k = att.prepare(keys).unsqueeze(1)  # [batch, 1, src_len, attn_dim]
    return att.v(torch.tanh(q + k)).squeeze(-1)  # [batch, steps, src_len]


def inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(BATCH, STEPS, Q_DIM, generator=gen, requires_grad=True)
    keys = torch.randn(BATCH, SRC_LEN, K_DIM, generator=gen, requires_grad=True)
    return query, keys


def grads(att, query, keys, scores):
    weights = torch.randn(scores.shape, generator=torch.Generator().manual_seed(1))
    return torch.autograd.grad((scores * weights).sum(), [query, keys, *att.parameters()])


# 1 step per chunk; 2, 2, 2 and a ragged 1; 3, 3, 1; everything in one chunk
@pytest.mark.parametrize("chunk_steps", [1, 2, 3, STEPS])
def test_chunked_scores_and_gradients_equal_the_one_piece_computation(chunk_steps):
    torch.manual_seed(0)
    att = AdditiveAttention(Q_DIM, K_DIM, A_DIM, max_chunk_elements=chunk_steps * PER_STEP)
    query, keys = inputs()
    chunked = att.scores(query, att.prepare(keys))
    whole = one_piece_scores(att, query, keys)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
    for got, want in zip(grads(att, query, keys, chunked), grads(att, query, keys, whole)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    with torch.no_grad():  # decoding: chunks without recomputation
        torch.testing.assert_close(att.scores(query, att.prepare(keys)), whole, rtol=0, atol=1e-5)


def test_the_largest_tensor_of_forward_and_backward_is_bounded_by_the_chunk():
    torch.manual_seed(0)
    sizes = {}
    for name, limit in (("chunked", 2 * PER_STEP), ("whole", 10**9)):
        att = AdditiveAttention(Q_DIM, K_DIM, A_DIM, max_chunk_elements=limit)
        query, keys = inputs()
        with LargestTensor() as seen:
            grads(att, query, keys, att.scores(query, att.prepare(keys)))
        sizes[name] = seen.numel
    assert sizes["whole"] == STEPS * PER_STEP  # the [batch, steps, src_len, attn_dim] sum
    assert sizes["chunked"] <= 2 * PER_STEP


def test_a_chunked_attention_decoder_trains_like_the_unchunked_one():
    """Loss and every gradient of a training step agree, in fp32 and under bf16 autocast."""
    cfg = ModelConfig(emb_dim=8, hid_dim=16, n_layers=2, dropout=0.0, bidirectional=True,
                      attention="bahdanau")
    b = collate([(torch.tensor([2, *range(4, 4 + n), 3]), torch.tensor([2, *range(5, 5 + m), 3]))
                 for n, m in ((5, 6), (2, 9), (8, 3))])
    for autocast in (False, True):
        results = []
        for limit in (2**24, 16 * 3 * b.src.shape[0]):  # one chunk; one target step per chunk
            torch.manual_seed(0)
            model = build_model(cfg, 20, 20)
            model.decoder.attention.max_chunk_elements = limit
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = model(b.src, b.src_lens, b.trg)
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1),
                                                     b.trg[1:].flatten(), ignore_index=1)
            loss.backward()
            results.append([loss.detach(), *(p.grad for p in model.parameters())])
        tol = 1e-2 if autocast else 1e-5
        for got, want in zip(*results):
            torch.testing.assert_close(got, want, rtol=0, atol=tol)
