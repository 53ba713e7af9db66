"""Notebook 10's checkers reject the typical wrong answers, naming the case that catches them;
the reference answer is PyTorch's own attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from conftest import rejects

from seq2seq_lib.exercises import check_causal_mask, check_scaled_dot_product_attention
from seq2seq_lib.exercises.nb10 import _attention_cases, answer_scaled_dot_product_attention


def no_scaling(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1).nan_to_num(0.0) @ v


def mask_after_softmax(q, k, v, mask=None):
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v


def nan_for_a_fully_masked_row(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def mask_inverted(q, k, v, mask=None):
    return answer_scaled_dot_product_attention(q, k, v, None if mask is None else ~mask)


def manual_exp(q, k, v, mask=None):
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).exp()
    if mask is not None:
        scores = scores * mask
    return (scores / scores.sum(-1, keepdim=True)).nan_to_num(0.0) @ v


def test_the_answer_is_pytorchs_own_attention():
    for case in _attention_cases():
        ours = case.run(answer_scaled_dot_product_attention)
        theirs = case.run(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m))
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_attention_rejects_typical_mistakes(capsys):
    check = check_scaled_dot_product_attention
    assert check(answer_scaled_dot_product_attention) is True
    capsys.readouterr()
    out = rejects(check, no_scaling, "没有掩码", capsys)
    assert "√d" in out
    rejects(check, mask_after_softmax, "填充的键（第二句只有 3 个词）", capsys)
    out = rejects(check, nan_for_a_fully_masked_row, "一个查询看不到任何键", capsys)
    assert "nan" in out
    rejects(check, mask_inverted, "填充的键（第二句只有 3 个词）", capsys)
    rejects(check, manual_exp, "分数很大（数值稳定性）", capsys)
    rejects(check, lambda q, k, v, mask=None: q @ k.transpose(-2, -1) @ v, "没有掩码", capsys)
    rejects(check, lambda q, k, v, mask=None: torch.bmm(
        torch.bmm(q, k.transpose(1, 2)).softmax(-1), v) if mask is None else
        answer_scaled_dot_product_attention(q, k, v, mask), "没有掩码", capsys)


def test_causal_mask_rejects_off_by_one_and_the_wrong_convention(capsys):
    check = check_causal_mask
    assert check(lambda n: torch.ones(n, n, dtype=torch.bool).tril()) is True
    capsys.readouterr()
    rejects(check, lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1), "n = 1", capsys)
    rejects(check, lambda n: torch.ones(n, n, dtype=torch.bool).tril(1), "n = 2", capsys)
    rejects(check, lambda n: torch.ones(n, n, dtype=torch.bool).triu(1), "n = 1", capsys)
    out = rejects(check, lambda n: torch.ones(n, n).tril(), "n = 1", capsys)
    assert "dtype" in out
    rejects(check, lambda n: torch.ones(n, n, dtype=torch.bool).triu(), "n = 2", capsys)
