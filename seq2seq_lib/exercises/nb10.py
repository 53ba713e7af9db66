"""Notebook 10's exercises: scaled dot-product attention and the causal mask."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..transformer import causal_mask
from .harness import Exercise, _Case, _case, _check, register

# ---------------------------------------------------------------------------------------------
# 10 · scaled dot-product attention
# ---------------------------------------------------------------------------------------------


def answer_scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q kᵀ / √d) v, where ``mask`` (True: may attend) hides the other keys.

    :param q: [..., n_q, d] queries; :param k: [..., n_k, d] keys; :param v: [..., n_k, d_v].
    :param mask: bool, broadcastable to [..., n_q, n_k], or None (every key is visible).
    :return: [..., n_q, d_v]; a query that may attend to no key at all gets zeros.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [..., n_q, n_k]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # before the softmax: weight 0
    weights = torch.softmax(scores, dim=-1)  # a row of only -inf becomes nan here
    weights = weights.nan_to_num(0.0)  # ... and zeros here, as PyTorch's own function gives
    return weights @ v


def _torch_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _attention_cases() -> list[_Case]:
    names = ("q", "k", "v", "mask")

    def qkv(*shape: int, n_k: int | None = None, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
        *lead, n_q, d = shape
        n_k = n_q if n_k is None else n_k
        return (torch.randn(*lead, n_q, d) * scale, torch.randn(*lead, n_k, d) * scale,
                torch.randn(*lead, n_k, d))

    lens = torch.tensor([5, 3])
    padding = (torch.arange(5) < lens.unsqueeze(1)).view(2, 1, 5)  # [batch, 1, n_k]
    no_key = torch.ones(2, 3, 4, dtype=torch.bool)
    no_key[1, 2] = False  # the third query of sentence 2 may see nothing
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    return [
        _case("没有掩码", "mask=None 时每个键都可见；分数要除以 √d（d 是 q 的最后一维）。",
              names, (*qkv(2, 3, 8, n_k=5), None)),
        _case("填充的键（第二句只有 3 个词）", "在 softmax 之前把 mask 为 False 的分数设成 -inf；"
              "先 softmax 再清零，每行的和就不再是 1。", names, (*qkv(2, 4, 8, n_k=5), padding)),
        _case("长度 1", "只有一个键时它的权重是 1，输出就是那个值向量。", names,
              (*qkv(1, 1, 4), torch.ones(1, 1, 1, dtype=torch.bool))),
        _case("一个查询看不到任何键", "整行都被屏蔽时 softmax 得到 nan；PyTorch 给出 0 向量"
              "（例如用 nan_to_num(0.0)）。", names, (*qkv(2, 3, 6, n_k=4), no_key)),
        _case("因果掩码（下三角）", "mask[i, j] 为 True 表示第 i 个位置可以看第 j 个位置；"
              "[n_q, n_k] 的掩码对批量里每句话都一样（广播）。", names, (*qkv(2, 4, 8), causal)),
        _case("多头：[batch, heads, n, d]", "只用最后两维做矩阵乘法（k.transpose(-2, -1)），"
              "前面的维度都是批量。", names,
              (*qkv(2, 4, 3, 16, n_k=5), padding.view(2, 1, 1, 5))),
        _case("分数很大（数值稳定性）", "不要自己算 exp：torch.softmax 会先减去最大值。",
              names, (*qkv(2, 3, 8, n_k=5, scale=30.0), padding)),
    ]


def check_scaled_dot_product_attention(fn: Callable) -> bool:
    """Check ``fn(q, k, v, mask) -> [..., n_q, d_v]`` against PyTorch's
    ``torch.nn.functional.scaled_dot_product_attention`` (mask: True where a query may look)."""
    hint = ("scores = q @ k.transpose(-2, -1) / math.sqrt(d)；mask 不是 None 时用 masked_fill 把 "
            "~mask 的位置设成 -inf；softmax(-1) 之后把 nan 换成 0，再乘以 v。")
    return _check(fn, hint, _attention_cases, _torch_attention)


# ---------------------------------------------------------------------------------------------
# 10 · the causal mask
# ---------------------------------------------------------------------------------------------


def answer_causal_mask(n: int) -> torch.Tensor:
    """[n, n] bool, True where position i may attend to position j (j <= i): the convention of
    ``scaled_dot_product_attention``.

    (``torch.nn.MultiheadAttention`` takes the opposite, True = hidden: the library's
    :func:`~seq2seq_lib.transformer.causal_mask`.)
    """
    return torch.ones(n, n, dtype=torch.bool).tril()  # the diagonal: a word sees itself


def _reference_causal_mask(n: int) -> torch.Tensor:
    return ~causal_mask(n)


def _causal_cases() -> list[_Case]:
    def case(name: str, point: str, n: int) -> _Case:
        return _case(name, point, ("n",), (n,))

    return [
        case("n = 1", "唯一的位置能看见它自己：[[True]]。", 1),
        case("n = 2", "第 0 个位置只看自己，第 1 个位置看 0 和 1：对角线也是 True。", 2),
        case("n = 5", "下三角（含对角线）为 True，上三角为 False；dtype 是 torch.bool。", 5),
    ]


def check_causal_mask(fn: Callable) -> bool:
    """Check ``fn(n) -> [n, n] bool`` (True where i may attend to j, i.e. j <= i)."""
    hint = "torch.ones(n, n, dtype=torch.bool).tril()：第 i 行的前 i + 1 个位置为 True。"
    return _check(fn, hint, _causal_cases, _reference_causal_mask)


register(
    Exercise("scaled_dot_product_attention", "10", "my_scaled_dot_product_attention",
             check_scaled_dot_product_attention, answer_scaled_dot_product_attention,
             "import math\n\nimport torch"),
    Exercise("causal_mask", "10", "my_causal_mask", check_causal_mask, answer_causal_mask,
             "import torch"),
)
