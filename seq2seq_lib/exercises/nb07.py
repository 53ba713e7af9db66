"""Notebook 07's exercises: the masked softmax."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..attention import masked_softmax
from .harness import Exercise, _Case, _case, _check, register

# ---------------------------------------------------------------------------------------------
# 07 · masked softmax
# ---------------------------------------------------------------------------------------------


def answer_masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the source positions that gives padding exactly zero weight.

    :param scores: [batch, steps, src_len] attention scores.
    :param mask: [batch, src_len], True at real source words.
    :return: weights [batch, steps, src_len]; every row sums to 1.
    """
    mask = mask.unsqueeze(1)  # [batch, 1, src_len]: the same mask for every decoder step
    scores = scores.masked_fill(~mask, float("-inf"))  # padding can never get weight
    return torch.softmax(scores, dim=-1)  # exp(-inf) = 0; softmax subtracts the max first


def _padding_gets_zero(mask: torch.Tensor) -> Callable[[torch.Tensor], str | None]:
    def extra(got: torch.Tensor) -> str | None:
        pad = ~mask.unsqueeze(1).expand_as(got)
        leak = got.detach()[pad].abs()
        if leak.numel() and bool((leak != 0).any()):
            return f"填充位置的权重应正好是 0，最大的是 {float(leak.max()):.3g}"
        return None

    return extra


def _masked_softmax_cases() -> list[_Case]:
    def case(name: str, point: str, scores: torch.Tensor, lens: list[int]) -> _Case:
        mask = torch.arange(scores.shape[-1]) < torch.tensor(lens).unsqueeze(1)  # [batch, src_len]
        return _case(name, point, ("scores", "mask"), (scores, mask), extra=_padding_gets_zero(mask))

    big = torch.tensor([[[0.0, 0.0, 1000.0]], [[1.0, 2.0, 3.0]]])  # padding holds the top score
    return [
        case("没有填充", "就是普通的 softmax，每行和为 1。", torch.randn(2, 1, 3), [3, 3]),
        case("第二句有填充", "填充位置（mask 为 False）的权重正好是 0，其余位置的和为 1。",
             torch.randn(2, 2, 4), [4, 2]),
        case("有一句只有一个词（长度 1）", "只有一个真实位置时，它的权重是 1。",
             torch.randn(2, 2, 3), [3, 1]),
        case("填充位置的分数最大", "要在 softmax 之前屏蔽（设成 -inf）；先 softmax 再清零、"
             "或把 exp 乘上 mask，在这里都会得到 nan 或错值。",
             big, [2, 3]),
        case("分数很大（数值稳定性）", "不要自己算 exp：torch.softmax 会先减去最大值。",
             torch.randn(2, 1, 4) * 500, [4, 3]),
        case("batch = steps = src_len = 3", "mask 是 [batch, src_len]，要 unsqueeze(1) 变成 "
             "[batch, 1, src_len]；方向错了也不会报错。", torch.randn(3, 3, 3), [3, 1, 2]),
    ]


def check_masked_softmax(fn: Callable) -> bool:
    """Check ``fn(scores [batch, steps, src_len], mask [batch, src_len]) -> weights`` against
    :func:`~seq2seq_lib.attention.masked_softmax`; padded positions must be exactly 0."""
    hint = ("把 mask 变成 [batch, 1, src_len]，用 masked_fill 把填充位置（mask 为 False）的分数"
            "设成 -inf，再在最后一维上做 torch.softmax。")
    return _check(fn, hint, _masked_softmax_cases, masked_softmax)


register(Exercise("masked_softmax", "07", "my_masked_softmax", check_masked_softmax,
                  answer_masked_softmax, "import torch"))
