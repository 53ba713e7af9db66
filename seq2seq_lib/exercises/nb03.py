"""Notebook 03's exercise: pad a batch and build its mask."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.utils.rnn import pad_sequence

from .harness import Exercise, _Case, _case, _check, register

# ---------------------------------------------------------------------------------------------
# 03 · pad a batch and build its mask
# ---------------------------------------------------------------------------------------------


def answer_pad_batch(seqs: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad 1-D id tensors into one time-major batch and mark where the real tokens are.

    :param seqs: one 1-D id tensor per sentence; the lengths may differ.
    :param pad_id: the id written into the empty positions.
    :return: ``padded`` [max_len, batch] (the dtype of the inputs) and ``mask`` [max_len, batch]
        (bool, True at real tokens, False at padding); column b holds sentence b.
    """
    max_len, batch = max(len(s) for s in seqs), len(seqs)
    padded = torch.full((max_len, batch), pad_id, dtype=seqs[0].dtype)  # [max_len, batch]
    mask = torch.zeros(max_len, batch, dtype=torch.bool)  # [max_len, batch]
    for b, s in enumerate(seqs):
        padded[: len(s), b] = s  # sentence b goes down column b
        mask[: len(s), b] = True
    return padded, mask


def _reference_pad_batch(seqs: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    padded = pad_sequence(seqs, padding_value=pad_id)  # [max_len, batch], as collate does
    lens = torch.tensor([len(s) for s in seqs])  # [batch]
    return padded, torch.arange(padded.shape[0]).unsqueeze(1) < lens  # mask: [max_len, batch]


def _pad_batch_cases() -> list[_Case]:
    def ids(*rows: list[int]) -> list[torch.Tensor]:
        return [torch.tensor(r) for r in rows]

    names = ("seqs", "pad_id")
    return [
        _case("三句长度不同，最长的在最后", "max_len 是最长一句的长度，不是第一句的。", names,
              (ids([2, 5, 6, 3], [2, 7, 3], [2, 8, 9, 10, 4, 3]), 1)),
        _case("有一句只有一个词", "长度 1 的句子只占第一行，其余是 pad_id，mask 为 False。", names,
              (ids([2, 5, 6, 3], [7], [2, 8, 3]), 1)),
        _case("所有句子一样长（不需要填充）", "没有填充时 mask 全是 True。", names,
              (ids([2, 5, 3], [2, 6, 3], [2, 7, 3], [2, 8, 3]), 1)),
        _case("批量里只有一句", "形状是 [len, 1]，时间在第一维。", names, (ids([2, 5, 6, 7, 3]), 1)),
        _case("pad_id 不是 1（用 0 填充）", "填充用参数 pad_id，不要写死成 1。", names,
              (ids([2, 5, 3], [2, 6, 7, 8, 3]), 0)),
        _case("每句都只有一个词", "max_len = 1：形状 [1, batch]。", names, (ids([5], [6], [7]), 1)),
    ]


def check_pad_batch(fn: Callable) -> bool:
    """Check ``fn(seqs, pad_id) -> (padded [max_len, batch], mask [max_len, batch])``."""
    hint = ("建一个 [max_len, batch] 的张量，先全部填 pad_id，再把第 b 句写进第 b 列；"
            "mask 形状相同（bool），真实词的位置为 True。")
    return _check(fn, hint, _pad_batch_cases, _reference_pad_batch)


register(Exercise("pad_batch", "03", "my_pad_batch", check_pad_batch, answer_pad_batch,
                  "import torch"))
