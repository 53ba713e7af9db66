"""Notebook 05's exercises: the masked loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .harness import Exercise, _Case, _case, _check, register

# ---------------------------------------------------------------------------------------------
# 05 · the masked loss
# ---------------------------------------------------------------------------------------------


def answer_masked_loss(logits: torch.Tensor, trg: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mean cross-entropy over the real (non-pad) target tokens.

    :param logits: [trg_len - 1, batch, vocab]; row t is the prediction for ``trg[t + 1]``.
    :param trg: [trg_len, batch], starting with ``<sos>``, padded with ``pad_id``.
    :return: a 0-dim tensor that ``.backward()`` can start from (the same value as
        ``nn.functional.cross_entropy(logits.flatten(0, 1), trg[1:].flatten(),
        ignore_index=pad_id)``).
    """
    target = trg[1:]  # [trg_len - 1, batch]: the word each row of logits should predict
    log_probs = logits.log_softmax(dim=-1)  # [trg_len - 1, batch, vocab], numerically stable
    nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # [trg_len - 1, batch]
    mask = target != pad_id  # [trg_len - 1, batch], True at real words
    return nll[mask].mean()  # mean over real words, not over sentences


def _reference_masked_loss(logits: torch.Tensor, trg: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The library's loss (``train.batch_loss``): cross-entropy against ``trg[1:]``, pad ignored."""
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), trg[1:].flatten(),
                                       ignore_index=pad_id)


def _loss_extra(got: torch.Tensor) -> str | None:
    if got.dim() != 0:
        return f"应返回 0 维张量（一个数），得到形状 {list(got.shape)}"
    if not got.requires_grad:
        return "返回值断开了计算图（不要用 .item()、float() 或 torch.tensor(...)），无法 backward()"
    return None


def _masked_loss_cases() -> list[_Case]:
    def case(name: str, point: str, trg: list[list[int]], vocab: int = 8, pad_id: int = 1,
             scale: float = 1.0) -> _Case:
        trg_t = torch.tensor(trg)  # [trg_len, batch]
        logits = (torch.randn(trg_t.shape[0] - 1, trg_t.shape[1], vocab) * scale).requires_grad_()
        return _case(name, point, ("logits", "trg", "pad_id"), (logits, trg_t, pad_id),
                     extra=_loss_extra)

    return [
        case("没有补齐，批次 1", "logits 的第 t 行预测 trg[t + 1]：目标是 trg[1:]。",
             [[2], [5], [6], [3]]),
        case("第二句较短，有补齐", "目标是 pad_id 的位置不算进损失；分母是真实词的个数。",
             [[2, 2], [5, 7], [6, 3], [4, 1], [3, 1]]),
        case("两句长短差很多：按词平均", "平均的分母是真实词的个数，不是先对每句求平均再平均。",
             [[2, 2], [5, 3], [6, 1], [7, 1], [4, 1], [5, 1], [3, 1]]),
        case("最短的目标：只有 <sos> <eos>（trg_len = 2）", "logits 只有一行，对应 <eos>。",
             [[2, 2, 2], [3, 3, 3]]),
        case("目标里有 <unk>（id 0）", "<unk> 是真实的词，要算进损失；只有 pad_id 不算。",
             [[2, 2], [0, 5], [3, 0], [1, 3]]),
        case("logits 很大（数值稳定性）", "log(softmax(x)) 会下溢成 log(0) = -inf；用 log_softmax。",
             [[2, 2], [5, 6], [3, 3]], scale=200.0),
    ]


def check_masked_loss(fn: Callable) -> bool:
    """Check ``fn(logits [trg_len-1, batch, vocab], trg [trg_len, batch], pad_id) -> loss``.

    The reference is the library's loss: mean cross-entropy against ``trg[1:]`` over the
    non-pad positions. The lesson's bug scored the rows one step too far (against ``trg[t+2]``).
    """
    hint = ("logits 的第 t 行预测 trg[t + 1]，所以目标是 trg[1:]；对每个位置取正确词的 −log 概率"
            "（用 log_softmax），只在目标不等于 pad_id 的位置上求平均，返回 0 维张量。")
    return _check(fn, hint, _masked_loss_cases, _reference_masked_loss, atol=1e-4)


register(Exercise("masked_loss", "05", "my_masked_loss", check_masked_loss, answer_masked_loss,
                  "import torch"))
